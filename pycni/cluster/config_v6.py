"""The IPv6 half of a dual-stack cluster config: Flannel's ``EnableIPv6``, ``IPv6Network``, ``IPv6SubnetLen``.

Pure. ``Ipv6Settings.from_wire(doc)`` reads the three fields of the cluster
config document (None when ``EnableIPv6`` is absent or false) and
``to_wire()`` writes them back. Each node leases an IPv6 subnet alongside
its IPv4 one, and the pair is fixed: the node holding the i-th /SubnetLen of
``Network`` gets the i-th /IPv6SubnetLen of ``IPv6Network``
(``subnet_for``). So the one transaction that claims the IPv4 subnet claims
the IPv6 one too, two nodes can never hold one IPv6 subnet, and the lease
keys stay as they were (Flannel instead writes both in the key,
``10.244.1.0-24&fd00:10:244:1::-64``, and allocates them separately).

Errors are ``InvalidConfig`` naming the field, like config.py's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_network
from typing import Any

from pycni.spec.errors import InvalidConfig

__all__ = ["FIELDS", "Ipv6Settings", "refuse_dual_stack"]

FIELDS = ("EnableIPv6", "IPv6Network", "IPv6SubnetLen")
DEFAULT_SUBNET_LEN = 64  # Flannel's default: SLAAC-sized, and host-local hands out far fewer anyway
MAX_SUBNET_LEN = 125  # 8 addresses, like IPv4's /29
DUAL_STACK_BACKENDS = ("vxlan", "host-gw")

_RESERVED = {
    "::/8": "loopback, unspecified and IPv4-mapped",
    "fe80::/10": "link-local",
    "ff00::/8": "multicast",
}


@dataclass(frozen=True)
class Ipv6Settings:
    network: IPv6Network
    subnet_len: int = DEFAULT_SUBNET_LEN

    def __post_init__(self) -> None:
        net = self.network
        if not isinstance(net, IPv6Network):
            raise InvalidConfig(f"IPv6Network: {net!r} is not an IPv6 CIDR")
        for reserved, what in _RESERVED.items():
            if net.overlaps(ip_network(reserved)):
                raise InvalidConfig(f"IPv6Network: {net} overlaps the {what} range {reserved}")
        if not isinstance(self.subnet_len, int) or isinstance(self.subnet_len, bool):
            raise InvalidConfig(f"IPv6SubnetLen: {self.subnet_len!r} is not an integer")
        if not net.prefixlen < self.subnet_len <= MAX_SUBNET_LEN:
            raise InvalidConfig(
                f"IPv6SubnetLen: must be larger than the IPv6 network prefix /{net.prefixlen} and at most "
                f"{MAX_SUBNET_LEN}, got {self.subnet_len}"
            )

    def check_pairs(self, network: IPv4Network, subnet_len: int) -> None:
        """Every IPv4 subnet of the config must have its IPv6 partner (InvalidConfig otherwise)."""
        v4_bits = subnet_len - network.prefixlen
        v6_bits = self.subnet_len - self.network.prefixlen
        if v6_bits < v4_bits:
            raise InvalidConfig(
                f"IPv6SubnetLen: {self.network} has {1 << v6_bits} subnets of /{self.subnet_len}, fewer than the "
                f"{1 << v4_bits} /{subnet_len} of {network} (each node's IPv4 subnet is paired with one); use "
                f"a longer IPv6SubnetLen or a larger IPv6Network"
            )

    def subnet_for(self, network: IPv4Network, subnet: IPv4Network) -> IPv6Network:
        """The IPv6 subnet paired with ``subnet`` of ``network``: same index, in IPv6Network."""
        index = (int(subnet.network_address) - int(network.network_address)) >> (32 - subnet.prefixlen)
        start = int(self.network.network_address) + (index << (128 - self.subnet_len))
        return IPv6Network((IPv6Address(start), self.subnet_len))

    def to_wire(self) -> dict[str, Any]:
        return {"EnableIPv6": True, "IPv6Network": str(self.network), "IPv6SubnetLen": self.subnet_len}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Ipv6Settings | None:
        enabled = data.get("EnableIPv6", False)
        if not isinstance(enabled, bool):
            raise InvalidConfig(f"EnableIPv6: {enabled!r} is not true or false")
        if not enabled:
            for name in ("IPv6Network", "IPv6SubnetLen"):
                if data.get(name) is not None:
                    raise InvalidConfig(f"{name}: set, but EnableIPv6 is not true (add \"EnableIPv6\": true)")
            return None
        text = data.get("IPv6Network")
        if text is None:
            raise InvalidConfig("IPv6Network: missing (EnableIPv6 needs one, e.g. \"fd00:10:244::/56\")")
        if not isinstance(text, str) or "/" not in text:
            raise InvalidConfig(f"IPv6Network: {text!r} is not a CIDR")
        try:
            net = ip_network(text.strip(), strict=False)
        except ValueError:
            raise InvalidConfig(f"IPv6Network: {text!r} is not a CIDR") from None
        if not isinstance(net, IPv6Network):
            raise InvalidConfig(f"IPv6Network: {text!r} is not an IPv6 CIDR")
        if ip_network(text.strip().split("/")[0]).network_address != net.network_address:
            raise InvalidConfig(f"IPv6Network: {text!r} has host bits set (did you mean {net}?)")
        subnet_len = data.get("IPv6SubnetLen")
        return cls(net, DEFAULT_SUBNET_LEN if subnet_len is None else subnet_len)

    def describe(self) -> str:
        return f"IPv6 {self.network}, /{self.subnet_len} per node"


def refuse_dual_stack(backend_type: str, *, ipv6_only: bool = False) -> str | None:
    """Why a dual-stack (or IPv6-only) config cannot run on ``backend_type`` (None when it can)."""
    if backend_type in DUAL_STACK_BACKENDS:
        return None
    kind = "an IPv6-only cluster (EnableIPv4 false)" if ipv6_only else "a dual-stack cluster (EnableIPv6)"
    return f"the {backend_type} backend is IPv4-only: {kind} needs the {' or '.join(DUAL_STACK_BACKENDS)} backend"
