"""Config readers shared by the plugins that create or move one link.

Pure: no I/O, so every plugin's ``parse_conf`` is unit-testable without
root. Each reader names the JSON key in its error (``mtu: expected a
non-negative integer, got -1``), raising InvalidConfig (code 7). Checks
that need the kernel (does the master exist, is the MTU within the
master's) live with the plugins' ADD, in ``pycni.plugins.attach``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pycni.spec import readers
from pycni.spec.config import ipam_type_of
from pycni.spec.errors import CniError, InvalidConfig
from pycni.spec.readers import read_str, read_uint
from pycni.spec.validate import validate_interface_name

__all__ = [
    "MAX_MTU",
    "read_choice",
    "read_ipam_type",
    "read_link_name",
    "read_mtu",
    "read_uint32",
]

#: The largest MTU any link type accepts (IP_MAX_MTU).
MAX_MTU = 65535
_UINT32_MAX = 2**32 - 1


def read_link_name(config: Mapping[str, Any], key: str, *, required: bool = False) -> str:
    """An interface name (master, device, bridge): 1-15 bytes, no "/", ":" or whitespace."""
    name = read_str(config, key, "")
    if not name:
        if required:
            raise InvalidConfig(f"{key}: missing (the name of an existing link)")
        return ""
    try:
        validate_interface_name(name)
    except CniError as exc:
        raise InvalidConfig(f"{key}: {name!r} is not a valid interface name ({exc.msg})") from exc
    return name


def read_mtu(config: Mapping[str, Any], key: str = "mtu") -> int | None:
    """An MTU; absent, null and 0 all mean "the kernel's default" (None)."""
    return read_uint(config, key, "", max=MAX_MTU, out_of_range="{value} is out of range (0-{max})") or None


def read_uint32(config: Mapping[str, Any], key: str) -> int | None:
    return read_uint(config, key, "", max=_UINT32_MAX, out_of_range="{value} does not fit in 32 bits")


def read_choice(config: Mapping[str, Any], key: str, choices: Sequence[str], default: str) -> str:
    """One of ``choices``; absent or "" is ``default``."""
    return readers.read_choice(config, key, "", choices, default)


def read_ipam_type(config: Mapping[str, Any], *, required_by: str = "") -> str:
    """``ipam.type`` (see pycni.spec.config.ipam_type_of); "" means no IPAM (``ipam: {}`` or no ``ipam``).

    ``required_by`` names the plugin that cannot work without IPAM.
    """
    ipam_type = ipam_type_of(config)
    if not ipam_type and required_by:
        raise InvalidConfig(f'ipam: {required_by} requires an IPAM configuration ("ipam": {{"type": ...}})')
    if ipam_type and ("/" in ipam_type or "\\" in ipam_type or ipam_type in (".", "..")):
        raise InvalidConfig(f"ipam.type: {ipam_type!r} is not a plugin name (no path separators)")
    return ipam_type
