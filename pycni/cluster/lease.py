"""Subnet leases as values: the types, the errors and the key/value codec. Pure.

Key layout under the prefix (default ``/pycni``)::

    <prefix>/config                   the ClusterConfig document (config.py); no TTL
    <prefix>/subnets/10.244.3.0-24    a live lease, attached to an etcd lease of ``ttl`` seconds that the
                                      node's agent keeps alive: {"Node", "PublicIP", "BackendType",
                                      "BackendData"} (BackendData is the backend's, e.g. {"VtepMAC": ...});
                                      dual stack adds {"IPv6Subnet", "PublicIPv6", "BackendV6Data"}
    <prefix>/subnets/fd00:10:244:1::-64  IPv6-only (EnableIPv4 false): the key names the IPv6 subnet and the
                                      value has no PublicIP: {"Node", "BackendType", "BackendData",
                                      "IPv6Subnet", "PublicIPv6", "BackendV6Data"}
    <prefix>/history/10.244.3.0-24    no TTL: the subnet's last owner and how its lease ended:
                                      {"Node", "PublicIP", "AcquiredAt", "ExpiredAt", "Released"}

Contract:

- ``decode_lease`` / ``decode_history`` turn a stored key and value into a ``Lease`` / ``History``
  and raise ``ValueError`` for anything malformed; ``lease_value`` / ``history_value`` are their
  inverses (compact JSON with sorted keys, so equal values are equal bytes).
- A dual-stack lease carries its IPv6 side as ``Lease.v6`` (``LeaseV6``); an IPv4-only lease has
  ``v6=None`` and is written byte for byte as before, so old leases read and old readers still work.
- An IPv6-only lease has ``subnet`` and ``public_ip`` of IPv6 and ``v6`` holding the same subnet and
  address with the IPv6 backend data: code for the IPv6 side reads ``v6`` in both kinds of cluster, and
  code for the IPv4 side skips a lease whose ``subnet.version`` is 6.
- Nothing here reads or writes the store: subnets.py does, over the ``KV`` seam.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Any, Literal

from pycni.cluster.config import AnyNetwork, ClusterConfig, subnet_key_name
from pycni.cluster.kv import KeyValue
from pycni.spec.errors import CniError, InvalidConfig, TryAgainLater

__all__ = [
    "DEFAULT_PREFIX",
    "ClusterNotInitialized",
    "History",
    "Lease",
    "LeaseLost",
    "LeaseV6",
    "NetworkFull",
    "SubnetState",
    "V6Attrs",
    "decode_history",
    "decode_lease",
    "encode",
    "history_value",
    "lease_value",
    "normalize_prefix",
    "subnet_from_key",
    "v6_side",
]

DEFAULT_PREFIX = "/pycni"


class NetworkFull(TryAgainLater):
    """Every subnet is leased or quarantined."""


class LeaseLost(CniError):
    """The node's subnet went to someone else (or out of the network) while its lease was expired."""


class ClusterNotInitialized(InvalidConfig):
    """No cluster config under the prefix."""


@dataclass(frozen=True)
class LeaseV6:
    """The IPv6 side of a dual-stack lease: the node's IPv6 subnet, underlay address and backend data."""

    subnet: IPv6Network
    public_ip: IPv6Address | None  # None: the node has no IPv6 underlay (vxlan cannot reach it over IPv6)
    backend_data: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"IPv6Subnet": str(self.subnet), "BackendV6Data": dict(self.backend_data)}
        if self.public_ip is not None:
            out["PublicIPv6"] = str(self.public_ip)
        return out

    def same(self, other: LeaseV6 | None) -> bool:
        return other is not None and (self.subnet, self.public_ip, dict(self.backend_data)) == (
            other.subnet, other.public_ip, dict(other.backend_data))


@dataclass(frozen=True)
class V6Attrs:
    """What a node brings to the IPv6 side of its lease: its IPv6 underlay address and backend data."""

    public_ip: IPv6Address | None
    backend_data: Mapping[str, Any] = field(default_factory=dict, hash=False)


def v6_side(cfg: ClusterConfig, subnet: AnyNetwork, attrs: V6Attrs | None) -> LeaseV6 | None:
    """The IPv6 side of a lease on ``subnet`` (None when the cluster is IPv4-only)."""
    paired = cfg.ipv6_subnet_for(subnet)
    if paired is None:
        return None
    attrs = attrs or V6Attrs(None)
    return LeaseV6(paired, attrs.public_ip, dict(attrs.backend_data))


@dataclass(frozen=True)
class Lease:
    node: str
    subnet: AnyNetwork  # IPv6 only in an IPv6-only cluster
    public_ip: IPv4Address | IPv6Address
    backend_type: str
    backend_data: Mapping[str, Any] = field(hash=False)
    expires_at: float | None  # clock time the lease ends unless renewed; None when not known
    key: str
    mod_revision: int
    lease_id: int = 0  # the etcd lease the key is attached to
    v6: LeaseV6 | None = None  # dual stack: the IPv6 subnet leased alongside

    def same_endpoint(self, other: Lease) -> bool:
        """Whether peers would program the same routes for both (everything but timing and revisions)."""
        return (
            self.node == other.node
            and self.subnet == other.subnet
            and self.public_ip == other.public_ip
            and self.backend_type == other.backend_type
            and dict(self.backend_data) == dict(other.backend_data)
            and (self.v6.same(other.v6) if self.v6 is not None else other.v6 is None)
        )


@dataclass(frozen=True)
class History:
    """The last owner of a subnet and how its lease ended."""

    subnet: AnyNetwork
    node: str
    public_ip: str
    acquired_at: float | None
    expired_at: float | None  # None while the lease lives, or until its expiry is noticed
    released: bool
    mod_revision: int

    def free_at(self, quarantine: float) -> float | None:
        """When other nodes may take the subnet (-inf: now); None when its expiry is not noticed yet."""
        if self.released:
            return float("-inf")
        if self.expired_at is None:
            return None
        return self.expired_at + quarantine


@dataclass(frozen=True)
class SubnetState:
    """One subnet as ``pycni cluster show`` reports it."""

    subnet: AnyNetwork
    status: Literal["leased", "quarantined", "free"]
    lease: Lease | None
    history: History | None
    free_at: float | None  # for quarantined subnets: when others may take it (None: not noticed yet)


def normalize_prefix(prefix: str) -> str:
    prefix = "/" + prefix.strip().strip("/")
    if prefix == "/":
        raise InvalidConfig("etcd prefix: must not be '/' (use e.g. /pycni)")
    return prefix


def subnet_from_key(key: str) -> AnyNetwork:
    """``.../subnets/10.244.3.0-24`` -> 10.244.3.0/24, ``fd00::-64`` -> fd00::/64 (ValueError when not one)."""
    net = _subnet_from_name(key.rsplit("/", 1)[-1])
    if net is None:
        raise ValueError(f"not a subnet key: {key!r}")
    return net


@lru_cache(maxsize=8192)  # every read of the leases parses each subnet's name again: ~15 us each in ipaddress
def _subnet_from_name(name: str) -> AnyNetwork | None:
    """The subnet a key's last part names; None when it is not the canonical name of one."""
    address, _, length = name.partition("-")
    net: AnyNetwork = IPv6Network(f"{address}/{length}") if ":" in address else IPv4Network(f"{address}/{length}")
    return net if subnet_key_name(net) == name else None


@lru_cache(maxsize=8192)  # every read of the leases parses each node's address again: ipaddress is slow at it
def _ip_address(text: str) -> IPv4Address | IPv6Address:
    return ip_address(text)


def decode_lease(kv: KeyValue) -> Lease:
    """A live lease from its ``subnets/`` key (ValueError when malformed)."""
    subnet = subnet_from_key(kv.key)
    try:
        data = json.loads(kv.value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"lease {kv.key}: not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"lease {kv.key}: not a JSON object")
    node, public_ip = data.get("Node"), data.get("PublicIP")
    backend_type, backend_data = data.get("BackendType", ""), data.get("BackendData") or {}
    if not isinstance(node, str) or not node:
        raise ValueError(f"lease {kv.key}: Node missing")
    if not isinstance(backend_type, str) or not isinstance(backend_data, dict):
        raise ValueError(f"lease {kv.key}: BackendType/BackendData malformed")
    if isinstance(subnet, IPv6Network):
        return _decode_ipv6_only(kv, subnet, node, backend_type, backend_data, data)
    try:
        ip = _ip_address(public_ip if isinstance(public_ip, str) else "")
    except ValueError:
        raise ValueError(f"lease {kv.key}: PublicIP {public_ip!r} is not an address") from None
    if not isinstance(ip, IPv4Address):
        raise ValueError(f"lease {kv.key}: PublicIP {public_ip!r} is not IPv4")
    v6 = _decode_v6(kv.key, data) if "IPv6Subnet" in data else None
    return Lease(node, subnet, ip, backend_type, backend_data, None, kv.key, kv.mod_revision, kv.lease, v6)


def _decode_ipv6_only(kv: KeyValue, subnet: IPv6Network, node: str, backend_type: str,
                      backend_data: dict[str, Any], data: Mapping[str, Any]) -> Lease:
    """An IPv6-only lease: its key names the IPv6 subnet, PublicIPv6 is the node's address."""
    v6 = _decode_v6(kv.key, data)
    if v6.subnet != subnet:
        raise ValueError(f"lease {kv.key}: IPv6Subnet {v6.subnet} is not the key's subnet {subnet}")
    if v6.public_ip is None:
        raise ValueError(f"lease {kv.key}: PublicIPv6 missing")
    return Lease(node, subnet, v6.public_ip, backend_type, backend_data, None, kv.key, kv.mod_revision, kv.lease, v6)


def _decode_v6(key: str, data: Mapping[str, Any]) -> LeaseV6:
    text, public, backend = data.get("IPv6Subnet"), data.get("PublicIPv6"), data.get("BackendV6Data") or {}
    try:
        subnet = IPv6Network(text if isinstance(text, str) else "")
    except ValueError:
        raise ValueError(f"lease {key}: IPv6Subnet {text!r} is not an IPv6 subnet") from None
    ip: IPv6Address | None = None
    if public is not None:
        try:
            ip = IPv6Address(public if isinstance(public, str) else "")
        except ValueError:
            raise ValueError(f"lease {key}: PublicIPv6 {public!r} is not an IPv6 address") from None
    if not isinstance(backend, dict):
        raise ValueError(f"lease {key}: BackendV6Data malformed")
    return LeaseV6(subnet, ip, backend)


def decode_history(kv: KeyValue) -> History:
    """A subnet's history from its ``history/`` key (ValueError or UnicodeDecodeError when malformed)."""
    subnet = subnet_from_key(kv.key)
    data = json.loads(kv.value)
    if not isinstance(data, dict) or not isinstance(data.get("Node"), str):
        raise ValueError(f"history {kv.key}: malformed")

    def when(name: str) -> float | None:
        value = data.get(name)
        if value is None:
            return None
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ValueError(f"history {kv.key}: {name} is not a number")
        return float(value)

    return History(subnet, data["Node"], str(data.get("PublicIP", "")), when("AcquiredAt"), when("ExpiredAt"),
                   bool(data.get("Released", False)), kv.mod_revision)


def encode(data: Mapping[str, Any]) -> bytes:
    """Compact JSON with sorted keys (TypeError for values that are not JSON)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def lease_value(node: str, public_ip: IPv4Address | IPv6Address, backend_type: str, data: Mapping[str, Any],
                v6: LeaseV6 | None = None) -> bytes:
    """The stored value; an IPv6-only lease (``public_ip`` IPv6, ``v6`` given) has no PublicIP."""
    doc: dict[str, Any] = {"Node": node, "BackendType": backend_type, "BackendData": data}
    if public_ip.version == 4:
        doc["PublicIP"] = str(public_ip)
    return encode({**doc, **v6.to_wire()} if v6 is not None else doc)


def history_value(node: str, public_ip: str, acquired_at: float | None, expired_at: float | None, *,
                  released: bool) -> bytes:
    return encode({"Node": node, "PublicIP": public_ip, "AcquiredAt": acquired_at, "ExpiredAt": expired_at,
                   "Released": released})
