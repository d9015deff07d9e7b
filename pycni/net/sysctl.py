"""Kernel sysctls under /proc/sys, in the calling thread's network namespace.

Contract:

- A key is dotted (``net.ipv4.ip_forward``) or already a slash path relative
  to /proc/sys (``net/ipv6/conf/eth0.100/accept_ra``); a key containing "/"
  is used as is. Interface names may contain dots, so per-interface keys
  are built with ``iface_key(family, ifname, name)``, which converts only
  the fixed parts (the bug class of plugins#585 / #779).
- /proc/sys/net reflects the netns of the thread that opens the file, so
  inside ``run_in_netns`` these functions act on that namespace.
- Errors are ``NetError`` ("failed to read sysctl 'x': ..."); a key that
  does not exist (e.g. IPv6 disabled) has ``errno == ENOENT``.
"""

from __future__ import annotations

import os

from pycni.net.errors import NetError
from pycni.net.netlink.errors import describe

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~4 ms, with re and enum, of a cold plugin call)
if TYPE_CHECKING:
    from typing import Literal

__all__ = [
    "enable_ip_forward",
    "ensure_sysctl",
    "iface_key",
    "read_sysctl",
    "sysctl_path",
    "write_sysctl",
]

_ROOT = "/proc/sys"


def sysctl_path(key: str) -> str:
    """The /proc/sys file for a dotted or slash key; rejects anything that could leave /proc/sys."""
    rel = key if "/" in key else key.replace(".", "/")
    parts = rel.strip("/").split("/")
    if not rel or any(part in ("", ".", "..") for part in parts):
        raise NetError(f"invalid sysctl key '{key}'")
    return f"{_ROOT}/{'/'.join(parts)}"


def iface_key(family: Literal[4, 6], ifname: str, name: str) -> str:
    """The slash key of a per-interface setting: ``net/ipv{4,6}/conf/<ifname>/<name>``."""
    if not ifname or "/" in ifname or ifname in (".", ".."):
        raise NetError(f"invalid interface name '{ifname}' in sysctl key")
    if not name or "/" in name or name in (".", ".."):
        raise NetError(f"invalid sysctl name '{name}'")
    return f"net/ipv{family}/conf/{ifname}/{name}"


def read_sysctl(key: str) -> str:
    """The value of a sysctl, without the trailing newline."""
    path = sysctl_path(key)
    try:
        with open(path, encoding="ascii") as f:
            return f.read().rstrip("\n")
    except OSError as exc:
        raise NetError(f"failed to read sysctl '{key}': {describe(exc)}", errno=exc.errno) from exc


def write_sysctl(key: str, value: str | int) -> None:
    """Set a sysctl."""
    path = sysctl_path(key)
    try:
        # One write() call: sysctl handlers parse each write separately.
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, str(value).encode("ascii"))
        finally:
            os.close(fd)
    except OSError as exc:
        raise NetError(f"failed to write sysctl '{key}' = '{value}': {describe(exc)}", errno=exc.errno) from exc


def ensure_sysctl(key: str, value: str | int) -> bool:
    """Write ``value`` unless the sysctl already has it; True if it was written."""
    if read_sysctl(key) == str(value):
        return False
    write_sysctl(key, value)
    return True


def enable_ip_forward(family: Literal[4, 6]) -> None:
    """Turn on forwarding for one family, writing only if it is not already on."""
    key = "net.ipv4.ip_forward" if family == 4 else "net.ipv6.conf.all.forwarding"
    ensure_sysctl(key, 1)
