"""The cluster network config: one JSON document in etcd, Flannel's field names.

Pure: ``ClusterConfig.from_wire(dict)`` validates and ``to_wire()`` writes
the document stored at ``<prefix>/config``::

    {"Network": "10.244.0.0/16", "SubnetLen": 24,
     "SubnetMin": "10.244.1.0", "SubnetMax": "10.244.254.0",
     "Backend": {"Type": "vxlan", "VNI": 1, "Port": 8472, "MTU": 1450},
     "Quarantine": 300}

As in Flannel, SubnetMin/SubnetMax are written as addresses and default to
the second and the last subnet of Network (the first, which holds the
network address, is left out when the network has room), and unknown
fields are refused rather than silently ignored, so a typo like
``SubnetLength`` is caught at ``cluster init``. ``Quarantine`` (seconds an
expired subnet waits before another node may take it) is pycni's own
addition: it belongs to the cluster, not to each agent, because the
shortest quarantine any node applies is the one that holds. ``EnableIPv6``,
``IPv6Network`` and ``IPv6SubnetLen`` make the network dual-stack
(config_v6.py). Every error is an
``InvalidConfig`` naming the field: ``"Network: '10.0.0.0/33' is not a CIDR"``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Network, ip_network
from typing import Any

from pycni.cluster.backends.bgp_config import FIELDS as BGP_FIELDS
from pycni.cluster.backends.bgp_config import BgpSettings
from pycni.cluster.backends.wireguard_config import FIELDS as WIREGUARD_FIELDS
from pycni.cluster.backends.wireguard_config import WireguardOptions
from pycni.cluster.config_v6 import FIELDS as IPV6_FIELDS
from pycni.cluster.config_v6 import Ipv6Settings
from pycni.spec.errors import InvalidConfig

__all__ = ["BACKEND_TYPES", "BackendConfig", "ClusterConfig", "subnet_key_name"]

BACKEND_TYPES = ("vxlan", "host-gw", "bgp", "wireguard")
MAX_SUBNET_LEN = 29  # /29: 8 addresses, 5 left for pods after network, broadcast and the node's gateway
MIN_MTU = 576
MAX_MTU = 65535

# Ranges a pod network must not overlap: traffic to them is never routed between nodes.
_RESERVED = {
    "0.0.0.0/8": "'this network'",
    "127.0.0.0/8": "loopback",
    "169.254.0.0/16": "link-local",
    "224.0.0.0/4": "multicast",
    "240.0.0.0/4": "reserved (class E) and broadcast",
}


@dataclass(frozen=True)
class BackendConfig:
    """How nodes reach each other's subnets. Wire: ``{"Type", "VNI", "Port", "MTU"}``."""

    type: str
    vni: int = 1
    port: int = 8472
    mtu: int | None = None
    bgp: BgpSettings | None = None  # the bgp backend's own fields (backends/bgp_config.py)
    wireguard: WireguardOptions | None = None  # the wireguard backend's own fields (backends/wireguard_config.py)

    def __post_init__(self) -> None:
        if self.type not in BACKEND_TYPES:
            raise InvalidConfig(f"Backend.Type: {self.type!r} is not supported (use {', '.join(BACKEND_TYPES)})")
        _check_int("Backend.VNI", self.vni, 0, 2**24 - 1)
        _check_int("Backend.Port", self.port, 1, 65535)
        if self.mtu is not None:
            _check_int("Backend.MTU", self.mtu, MIN_MTU, MAX_MTU)

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Type": self.type}
        if self.type == "vxlan":
            out["VNI"] = self.vni
            out["Port"] = self.port
        if self.mtu is not None:
            out["MTU"] = self.mtu
        if self.type == "bgp":
            out.update((self.bgp or BgpSettings()).to_wire())
        if self.type == "wireguard":
            out.update((self.wireguard or WireguardOptions()).to_wire())
        return out

    @classmethod
    def from_wire(cls, data: Any) -> BackendConfig:
        if not isinstance(data, Mapping):
            raise InvalidConfig(f"Backend: must be an object like {{\"Type\": \"vxlan\"}}, not {_show(data)}")
        kind = data.get("Type")
        _refuse_unknown("Backend.", data, ("Type", "VNI", "Port", "MTU") + (BGP_FIELDS if kind == "bgp" else ())
                        + (WIREGUARD_FIELDS if kind == "wireguard" else ()))
        if not isinstance(kind, str):
            raise InvalidConfig(f"Backend.Type: missing (use {', '.join(BACKEND_TYPES)})")
        if kind in ("host-gw", "bgp", "wireguard"):
            for name in ("VNI", "Port"):
                if name in data:
                    raise InvalidConfig(f"Backend.{name}: only applies to the vxlan backend")
        kw: dict[str, Any] = {}
        for name, attr in (("VNI", "vni"), ("Port", "port"), ("MTU", "mtu")):
            if name in data and data[name] is not None:
                kw[attr] = data[name]
        if kind == "bgp":
            kw["bgp"] = BgpSettings.from_wire(data)
        if kind == "wireguard":
            kw["wireguard"] = WireguardOptions.from_wire(data)
        return cls(type=kind, **kw)


def _default_backend() -> BackendConfig:
    return BackendConfig(type="vxlan")


@dataclass(frozen=True)
class ClusterConfig:
    """The pod network shared by every node, cut into one subnet per node."""

    network: IPv4Network
    subnet_len: int = 24
    subnet_min: IPv4Network | None = None
    subnet_max: IPv4Network | None = None
    backend: BackendConfig = field(default_factory=_default_backend)
    quarantine: int | None = None  # seconds; None: each SubnetManager's default
    ipv6: Ipv6Settings | None = None  # dual stack: each node's IPv6 subnet is paired with its IPv4 one

    def __post_init__(self) -> None:
        if self.quarantine is not None:
            _check_int("Quarantine", self.quarantine, 0, 30 * 24 * 3600)
        net = self.network
        if not isinstance(net, IPv4Network):
            raise InvalidConfig(f"Network: {_show(net)} is not an IPv4 CIDR")
        for reserved, what in _RESERVED.items():
            if net.overlaps(ip_network(reserved)):
                raise InvalidConfig(f"Network: {net} overlaps the {what} range {reserved}")
        if net.prefixlen > MAX_SUBNET_LEN - 1:
            raise InvalidConfig(f"Network: {net} is too small for two nodes; use a /{MAX_SUBNET_LEN - 1} or larger")
        _check_int("SubnetLen", self.subnet_len, 0, 32)
        if self.subnet_len <= net.prefixlen:
            raise InvalidConfig(
                f"SubnetLen: must be larger than the network prefix /{net.prefixlen} "
                f"(every node gets a /SubnetLen out of {net}), got {self.subnet_len}"
            )
        if self.subnet_len > MAX_SUBNET_LEN:
            raise InvalidConfig(
                f"SubnetLen: {self.subnet_len} leaves fewer than 4 addresses per node for pods; "
                f"use at most {MAX_SUBNET_LEN}"
            )
        for name in ("subnet_min", "subnet_max"):
            value = getattr(self, name)
            if value is None:
                continue
            wire = "SubnetMin" if name == "subnet_min" else "SubnetMax"
            if not isinstance(value, IPv4Network) or value.prefixlen != self.subnet_len:
                raise InvalidConfig(f"{wire}: {_show(value)} is not a /{self.subnet_len} subnet")
            if not value.subnet_of(net):
                raise InvalidConfig(f"{wire}: {value.network_address} is outside Network {net}")
        if self.first > self.last:
            raise InvalidConfig(
                f"SubnetMin: {self.first.network_address} is after SubnetMax {self.last.network_address}"
            )
        if self.ipv6 is not None:
            self.ipv6.check_pairs(net, self.subnet_len)

    def ipv6_subnet_for(self, subnet: IPv4Network) -> IPv6Network | None:
        """The IPv6 subnet a node holding ``subnet`` gets (None without EnableIPv6)."""
        return None if self.ipv6 is None else self.ipv6.subnet_for(self.network, subnet)

    # -- the subnets nodes may lease ------------------------------------------------

    @property
    def first(self) -> IPv4Network:
        """SubnetMin, or the second subnet of Network (the first when it only has two)."""
        if self.subnet_min is not None:
            return self.subnet_min
        skip = 1 if self.subnet_len - self.network.prefixlen > 1 else 0
        return self._nth(skip)

    @property
    def last(self) -> IPv4Network:
        if self.subnet_max is not None:
            return self.subnet_max
        return self._nth((1 << (self.subnet_len - self.network.prefixlen)) - 1)

    @property
    def subnet_count(self) -> int:
        size = 1 << (32 - self.subnet_len)
        return (int(self.last.network_address) - int(self.first.network_address)) // size + 1

    def subnets(self) -> Iterator[IPv4Network]:
        """Every leasable subnet, SubnetMin to SubnetMax in address order."""
        size = 1 << (32 - self.subnet_len)
        start = int(self.first.network_address)
        for i in range(self.subnet_count):
            yield IPv4Network((start + i * size, self.subnet_len))

    def contains(self, subnet: IPv4Network) -> bool:
        """Whether ``subnet`` is one this config hands out."""
        return (
            subnet.prefixlen == self.subnet_len
            and subnet.subnet_of(self.network)
            and self.first.network_address <= subnet.network_address <= self.last.network_address
        )

    def _nth(self, index: int) -> IPv4Network:
        size = 1 << (32 - self.subnet_len)
        return IPv4Network((int(self.network.network_address) + index * size, self.subnet_len))

    # -- wire ----------------------------------------------------------------------

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Network": str(self.network), "SubnetLen": self.subnet_len}
        if self.subnet_min is not None:
            out["SubnetMin"] = str(self.subnet_min.network_address)
        if self.subnet_max is not None:
            out["SubnetMax"] = str(self.subnet_max.network_address)
        out["Backend"] = self.backend.to_wire()
        if self.quarantine is not None:
            out["Quarantine"] = self.quarantine
        if self.ipv6 is not None:
            out.update(self.ipv6.to_wire())
        return out

    @classmethod
    def from_wire(cls, data: Any) -> ClusterConfig:
        if not isinstance(data, Mapping):
            raise InvalidConfig(f"cluster config must be a JSON object, not {_show(data)}")
        ipv4_fields = {k: v for k, v in data.items() if k not in IPV6_FIELDS}  # the IPv6 ones: config_v6.py
        _refuse_unknown("", ipv4_fields, ("Network", "SubnetLen", "SubnetMin", "SubnetMax", "Backend", "Quarantine"))
        if "Network" not in data:
            raise InvalidConfig("Network: missing (the pod network, e.g. \"10.244.0.0/16\")")
        network = _parse_network("Network", data["Network"])
        subnet_len = data.get("SubnetLen", 24)
        if subnet_len is None:
            subnet_len = 24
        _check_int("SubnetLen", subnet_len, 0, 32)
        bounds = [
            _parse_bound(name, data.get(name), subnet_len) if data.get(name) is not None else None
            for name in ("SubnetMin", "SubnetMax")
        ]
        backend = BackendConfig.from_wire(data["Backend"]) if "Backend" in data else _default_backend()
        return cls(network=network, subnet_len=subnet_len, subnet_min=bounds[0], subnet_max=bounds[1],
                   backend=backend, quarantine=data.get("Quarantine"), ipv6=Ipv6Settings.from_wire(data))

    def describe(self) -> str:
        """One line for messages: ``10.244.0.0/16, /24 per node (254 subnets), vxlan VNI 1 port 8472``."""
        backend = self.backend.type
        if self.backend.type == "vxlan":
            backend += f" VNI {self.backend.vni} port {self.backend.port}"
        if self.backend.bgp is not None:
            backend += f" ({self.backend.bgp.describe()})"
        if self.backend.type == "wireguard":
            backend += f" ({(self.backend.wireguard or WireguardOptions()).describe()})"
        if self.backend.mtu is not None:
            backend += f" MTU {self.backend.mtu}"
        text = f"{self.network}, /{self.subnet_len} per node ({self.subnet_count} subnets), {backend}"
        if self.quarantine is not None:
            text += f", quarantine {self.quarantine}s"
        if self.ipv6 is not None:
            text += f"; {self.ipv6.describe()}"
        return text


def subnet_key_name(subnet: IPv4Network) -> str:
    """How a subnet appears in a key, as Flannel writes it: ``10.244.3.0-24``."""
    return f"{subnet.network_address}-{subnet.prefixlen}"


def _parse_network(name: str, value: Any) -> IPv4Network:
    if not isinstance(value, str) or "/" not in value:
        raise InvalidConfig(f"{name}: {_show(value)} is not a CIDR")
    try:
        net = ip_network(value.strip(), strict=False)
    except ValueError:
        raise InvalidConfig(f"{name}: {_show(value)} is not a CIDR") from None
    if not isinstance(net, IPv4Network):
        raise InvalidConfig(f"{name}: {_show(value)} is not an IPv4 CIDR (IPv6 pod networks are not supported)")
    if IPv4Address(value.strip().split("/")[0]) != net.network_address:
        raise InvalidConfig(f"{name}: {_show(value)} has host bits set (did you mean {net}?)")
    return net


def _parse_bound(name: str, value: Any, subnet_len: int) -> IPv4Network:
    if not isinstance(value, str):
        raise InvalidConfig(f"{name}: {_show(value)} is not an address")
    text = value if "/" in value else f"{value}/{subnet_len}"
    try:
        net = ip_network(text, strict=True)
    except ValueError:
        raise InvalidConfig(f"{name}: {_show(value)} is not the start of a /{subnet_len} subnet") from None
    if not isinstance(net, IPv4Network) or net.prefixlen != subnet_len:
        raise InvalidConfig(f"{name}: {_show(value)} is not the start of a /{subnet_len} subnet")
    return net


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidConfig(f"{name}: {_show(value)} is not an integer")
    if not low <= value <= high:
        raise InvalidConfig(f"{name}: {value} is out of range ({low}-{high})")


def _refuse_unknown(where: str, data: Mapping[str, Any], known: tuple[str, ...]) -> None:
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise InvalidConfig(f"{where}{unknown[0]}: unknown field (known: {', '.join(known)})")


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else type(value).__name__ if value is not None else "null"
