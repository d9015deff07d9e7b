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
(config_v6.py); with ``"EnableIPv4": false`` too (Flannel's field, default
true) it is IPv6-only: no ``Network``, ``network`` is None, and nodes lease
/IPv6SubnetLen subnets of ``IPv6Network`` keyed by their own name
(``fd00:10:244:1::-64``). The leasable subnets (``first``, ``last``,
``subnets``, ``contains``) are of ``lease_network``: Network, or IPv6Network
when IPv4 is off. Every error is an
``InvalidConfig`` naming the field: ``"Network: '10.0.0.0/33' is not a CIDR"``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network
from typing import Any, TypeAlias

from pycni.cluster.backends.bgp_config import FIELDS as BGP_FIELDS
from pycni.cluster.backends.bgp_config import BgpSettings
from pycni.cluster.backends.wireguard_config import FIELDS as WIREGUARD_FIELDS
from pycni.cluster.backends.wireguard_config import WireguardOptions
from pycni.cluster.config_v6 import FIELDS as IPV6_FIELDS
from pycni.cluster.config_v6 import Ipv6Settings
from pycni.spec.errors import InvalidConfig

__all__ = ["BACKEND_TYPES", "AnyNetwork", "BackendConfig", "ClusterConfig", "subnet_key_name"]

AnyNetwork: TypeAlias = IPv4Network | IPv6Network  # a leased subnet: IPv4, or IPv6 in an IPv6-only cluster

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

    network: IPv4Network | None  # None: IPv6-only (EnableIPv4 false), ``ipv6`` says the network
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
        if net is None:
            if self.ipv6 is None:
                raise InvalidConfig("EnableIPv6: an IPv6-only config (EnableIPv4 false) needs \"EnableIPv6\": true "
                                    "and an IPv6Network")
            if self.subnet_min is not None or self.subnet_max is not None:
                raise InvalidConfig("SubnetMin: only applies to an IPv4 Network (EnableIPv4 is false)")
            return
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
        if int(self.first.network_address) > int(self.last.network_address):
            raise InvalidConfig(
                f"SubnetMin: {self.first.network_address} is after SubnetMax {self.last.network_address}"
            )
        if self.ipv6 is not None:
            self.ipv6.check_pairs(net, self.subnet_len)

    def ipv6_subnet_for(self, subnet: AnyNetwork) -> IPv6Network | None:
        """The IPv6 subnet a node holding ``subnet`` gets (None without EnableIPv6; itself when IPv6-only)."""
        if self.ipv6 is None:
            return None
        if isinstance(subnet, IPv6Network):
            return subnet
        assert self.network is not None  # an IPv4 subnet is leased only where IPv4 is on
        return self.ipv6.subnet_for(self.network, subnet)

    @property
    def ipv6_only(self) -> bool:
        return self.network is None

    def check_public_ip(self, node: str, public_ip: IPv4Address | IPv6Address) -> None:
        """InvalidConfig unless ``public_ip`` is of the family leases are keyed in (IPv6 when IPv6-only)."""
        if public_ip.version != self.lease_network.version:
            kind = "IPv6-only" if self.network is None else "IPv4"
            raise InvalidConfig(f"node {node}: its public address {public_ip} is IPv{public_ip.version}, but the "
                                f"cluster network is {kind} ({self.describe()}): the node needs an "
                                f"IPv{self.lease_network.version} underlay address")

    # -- the subnets nodes may lease ------------------------------------------------

    @property
    def lease_network(self) -> AnyNetwork:
        """The network leases cut: Network, or IPv6Network in an IPv6-only cluster."""
        if self.network is not None:
            return self.network
        assert self.ipv6 is not None  # __post_init__
        return self.ipv6.network

    @property
    def lease_len(self) -> int:
        """The prefix length of a leased subnet: SubnetLen, or IPv6SubnetLen in an IPv6-only cluster."""
        if self.network is not None:
            return self.subnet_len
        assert self.ipv6 is not None
        return self.ipv6.subnet_len

    @property
    def first(self) -> AnyNetwork:
        """SubnetMin, or the second subnet of the network (the first when it only has two)."""
        if self.subnet_min is not None:
            return self.subnet_min
        skip = 1 if self.lease_len - self.lease_network.prefixlen > 1 else 0
        return self._nth(skip)

    @property
    def last(self) -> AnyNetwork:
        if self.subnet_max is not None:
            return self.subnet_max
        return self._nth((1 << (self.lease_len - self.lease_network.prefixlen)) - 1)

    @property
    def subnet_count(self) -> int:
        return (int(self.last.network_address) - int(self.first.network_address)) // self.subnet_size + 1

    @property
    def subnet_size(self) -> int:
        """Addresses in one leased subnet."""
        return 1 << (self.lease_network.max_prefixlen - self.lease_len)

    def subnet_at(self, start: int) -> AnyNetwork:
        """The leased-length subnet starting at the integer address ``start``, in the leased family."""
        if self.network is not None:
            return IPv4Network((start, self.subnet_len))
        return IPv6Network((start, self.lease_len))

    def subnets(self) -> Iterator[AnyNetwork]:
        """Every leasable subnet, SubnetMin to SubnetMax in address order."""
        size = self.subnet_size
        start = int(self.first.network_address)
        for i in range(self.subnet_count):
            yield self.subnet_at(start + i * size)

    def contains(self, subnet: AnyNetwork) -> bool:
        """Whether ``subnet`` is one this config hands out (never one of the other family)."""
        network = self.lease_network
        return (
            subnet.version == network.version
            and subnet.prefixlen == self.lease_len
            and int(network.network_address) <= int(subnet.network_address) <= int(network.broadcast_address)
            and int(self.first.network_address) <= int(subnet.network_address) <= int(self.last.network_address)
        )

    def _nth(self, index: int) -> AnyNetwork:
        return self.subnet_at(int(self.lease_network.network_address) + index * self.subnet_size)

    # -- wire ----------------------------------------------------------------------

    def to_wire(self) -> dict[str, Any]:
        if self.network is None:  # IPv6-only: Flannel's EnableIPv4 false, no Network
            out: dict[str, Any] = {"EnableIPv4": False, "Backend": self.backend.to_wire()}
            if self.quarantine is not None:
                out["Quarantine"] = self.quarantine
            assert self.ipv6 is not None
            return {**out, **self.ipv6.to_wire()}
        out = {"Network": str(self.network), "SubnetLen": self.subnet_len}
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
        # the IPv6 ones: config_v6.py; EnableIPv4 (false: IPv6-only) just below
        ipv4_fields = {k: v for k, v in data.items() if k not in IPV6_FIELDS and k != "EnableIPv4"}
        _refuse_unknown("", ipv4_fields, ("Network", "SubnetLen", "SubnetMin", "SubnetMax", "Backend", "Quarantine"))
        enable_ipv4 = data.get("EnableIPv4", True)
        if not isinstance(enable_ipv4, bool):
            raise InvalidConfig(f"EnableIPv4: {_show(enable_ipv4)} is not true or false")
        if not enable_ipv4:
            return cls._ipv6_only(data)
        if "Network" not in data:
            hint = "; an IPv6-only network sets \"EnableIPv4\": false" if data.get("EnableIPv6") is True else ""
            raise InvalidConfig(f"Network: missing (the pod network, e.g. \"10.244.0.0/16\"{hint})")
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

    @classmethod
    def _ipv6_only(cls, data: Mapping[str, Any]) -> ClusterConfig:
        for name in ("Network", "SubnetLen", "SubnetMin", "SubnetMax"):
            if data.get(name) is not None:
                raise InvalidConfig(f"{name}: set, but EnableIPv4 is false (an IPv6-only network has only "
                                    f"IPv6Network and IPv6SubnetLen)")
        if data.get("EnableIPv6") is not True:
            raise InvalidConfig("EnableIPv6: an IPv6-only config (EnableIPv4 false) needs \"EnableIPv6\": true "
                                "and an IPv6Network")
        backend = BackendConfig.from_wire(data["Backend"]) if "Backend" in data else _default_backend()
        return cls(network=None, backend=backend, quarantine=data.get("Quarantine"), ipv6=Ipv6Settings.from_wire(data))

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
        if self.network is None:
            text = (f"IPv6-only {self.lease_network}, /{self.lease_len} per node ({self.subnet_count} subnets), "
                    f"{backend}")
        else:
            text = f"{self.network}, /{self.subnet_len} per node ({self.subnet_count} subnets), {backend}"
        if self.quarantine is not None:
            text += f", quarantine {self.quarantine}s"
        if self.ipv6 is not None and self.network is not None:
            text += f"; {self.ipv6.describe()}"
        return text


def subnet_key_name(subnet: AnyNetwork) -> str:
    """How a subnet appears in a key, as Flannel writes it: ``10.244.3.0-24`` (``fd00:10:244:1::-64``)."""
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
