"""Identifier rules from the spec: container IDs, network names, ifnames."""

from __future__ import annotations

from pycni.spec.errors import InvalidConfig, InvalidEnvironment, UnknownContainer

# ``^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`` checked by hand: ``re`` (and the ``enum``
# it imports) costs a cold plugin call ~8 ms.
_ID_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_ID_REST = _ID_FIRST | frozenset("_.-")
IFNAME_MAX_BYTES = 15


def _valid_id(text: str) -> bool:
    if text.endswith("\n"):
        text = text[:-1]  # re's ``$`` also matches before a final newline
    return bool(text) and text[0] in _ID_FIRST and _ID_REST.issuperset(text)


def validate_container_id(container_id: str) -> None:
    if not container_id:
        raise UnknownContainer("missing containerID")
    if not _valid_id(container_id):
        raise InvalidEnvironment("invalid characters in containerID", container_id)


def validate_network_name(name: str) -> None:
    if not name:
        raise InvalidConfig("missing network name")
    if not _valid_id(name):
        raise InvalidConfig("invalid characters found in network name", name)


def validate_interface_name(ifname: str) -> None:
    """Linux rules: 1..15 bytes, not "." or "..", no "/", ":" or whitespace."""
    if not ifname:
        raise InvalidEnvironment("interface name is empty")
    if len(ifname.encode()) > IFNAME_MAX_BYTES:
        raise InvalidEnvironment(
            "interface name is too long", f"interface name should be less than {IFNAME_MAX_BYTES + 1} characters"
        )
    if ifname in (".", ".."):
        raise InvalidEnvironment("interface name is . or ..")
    if any(c in "/:" or c.isspace() for c in ifname):
        raise InvalidEnvironment("interface name contains / or : or whitespace characters")
