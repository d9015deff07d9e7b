"""The kernel's WireGuard, driven with wireguard-tools' ``wg`` and ``ip`` (pyroute2's genl client is not used:
``wg`` is already a dependency for the userspace path, and its dump format is stable and documented in wg(8)).

``add_wireguard_link(dev)`` makes the device; ``wg_dump(dev)`` returns ``wg
show DEV dump``; ``wg_set(dev, args)`` runs ``wg set DEV ARGS...``. Failures
are ``NetError`` with wg's message.
"""

from __future__ import annotations

import subprocess

from pycni.net.errors import NetError

__all__ = ["add_wireguard_link", "wg_dump", "wg_set"]


def _run(*cmd: str) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetError(f"failed to run '{' '.join(cmd)}': {exc}") from exc
    if proc.returncode != 0:
        raise NetError(f"failed to run '{' '.join(cmd)}': {proc.stderr.strip()}")
    return proc.stdout


def add_wireguard_link(dev: str) -> None:
    _run("ip", "link", "add", "dev", dev, "type", "wireguard")


def wg_dump(dev: str) -> str:
    return _run("wg", "show", dev, "dump")


def wg_set(dev: str, args: list[str]) -> None:
    _run("wg", "set", dev, *args)
