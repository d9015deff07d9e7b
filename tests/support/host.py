"""Commands on the host and in named network namespaces, and what iproute2 says about links.

``run`` is ``subprocess.run`` with text output captured, optionally inside a
named netns (``ip netns exec``); it raises CalledProcessError unless
``check=False``. Nothing here creates anything: see ``tests.support.netns``.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

__all__ = ["ip_json", "link_exists", "links_with_master", "netns_names", "ping", "run"]


def run(*cmd: str, netns: str | None = None, check: bool = True,
        timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run a command, optionally inside a named netns."""
    full = ["ip", "netns", "exec", netns, *cmd] if netns else list(cmd)
    return subprocess.run(full, capture_output=True, text=True, check=check, timeout=timeout)


def ip_json(*args: str, netns: str | None = None) -> Any:
    """``ip -j <args>`` parsed ([] when ip prints nothing)."""
    out = run("ip", "-j", *args, netns=netns).stdout
    return json.loads(out) if out.strip() else []


def link_exists(name: str, netns: str | None = None) -> bool:
    return run("ip", "link", "show", "dev", name, netns=netns, check=False).returncode == 0


def links_with_master(bridge: str) -> list[str]:
    """The links enslaved to ``bridge`` ([] when it does not exist)."""
    out = run("ip", "-j", "link", "show", "master", bridge, check=False).stdout
    return [link["ifname"] for link in json.loads(out)] if out.strip() else []


def netns_names() -> set[str]:
    """The named network namespaces (``ip netns list``)."""
    out = run("ip", "netns", "list", check=False).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def ping(target: str, netns: str, count: int = 1) -> bool:
    """True if ``target`` answers a ping sent from inside the named ``netns``."""
    return run("ping", "-c", str(count), "-W", "2", target, netns=netns, check=False).returncode == 0
