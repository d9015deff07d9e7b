"""The bgp backend's part of the cluster config (pure): AS number, mesh, global peers, route reflectors.

Wire, inside ``Backend`` (pycni.cluster.config)::

    {"Type": "bgp", "ASN": 64512, "Mesh": true,
     "Peers": [{"IP": "10.0.0.1", "ASN": 65000}], "RouteReflectors": ["n1"]}

- ``ASN``: the cluster's AS number, shared by every node (iBGP between
  nodes); default 64512, Calico's.
- ``Mesh``: every node peers with every other node. Default true, unless
  ``RouteReflectors`` names nodes: then those nodes reflect and every other
  node peers only with them (a mesh and reflectors exclude each other).
- ``Peers``: global peers every node opens a session to (a top-of-rack
  router); a peer in another AS is eBGP.
- ``RouteReflectors``: node names.

``BgpSettings.from_wire`` raises ``InvalidConfig`` naming the field
(``"Backend.Peers[0].IP: 'x' is not an IPv4 address"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, ip_address
from typing import Any

from pycni.spec.errors import InvalidConfig

__all__ = ["DEFAULT_ASN", "FIELDS", "BgpPeer", "BgpSettings"]

DEFAULT_ASN = 64512
FIELDS = ("ASN", "Mesh", "Peers", "RouteReflectors")
MAX_ASN = 2**32 - 1


def _asn(where: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_ASN:
        raise InvalidConfig(f"{where}: {value!r} is not an AS number (1-{MAX_ASN})")
    return value


@dataclass(frozen=True, order=True)
class BgpPeer:
    """A global peer: every node opens a session to it."""

    ip: IPv4Address
    asn: int

    def to_wire(self) -> dict[str, Any]:
        return {"IP": str(self.ip), "ASN": self.asn}

    @classmethod
    def from_wire(cls, where: str, data: Any) -> BgpPeer:
        if not isinstance(data, Mapping):
            raise InvalidConfig(f'{where}: must be an object like {{"IP": "10.0.0.1", "ASN": 65000}}')
        unknown = sorted(str(k) for k in data if k not in ("IP", "ASN"))
        if unknown:
            raise InvalidConfig(f"{where}.{unknown[0]}: unknown field (known: IP, ASN)")
        if "IP" not in data or "ASN" not in data:
            raise InvalidConfig(f"{where}: needs IP and ASN")
        try:
            ip = ip_address(data["IP"]) if isinstance(data["IP"], str) else None
        except ValueError:
            ip = None
        if not isinstance(ip, IPv4Address):
            raise InvalidConfig(f"{where}.IP: {data['IP']!r} is not an IPv4 address")
        return cls(ip=ip, asn=_asn(f"{where}.ASN", data["ASN"]))

    @classmethod
    def parse(cls, text: str) -> BgpPeer:
        """``IP:ASN`` as ``--bgp-peer`` takes it."""
        ip, sep, asn = text.rpartition(":")
        if not sep or not asn.isdigit():
            raise InvalidConfig(f"--bgp-peer: {text!r} is not IP:ASN (e.g. 10.0.0.1:65000)")
        return cls.from_wire("--bgp-peer", {"IP": ip, "ASN": int(asn)})


@dataclass(frozen=True)
class BgpSettings:
    asn: int = DEFAULT_ASN
    mesh: bool = True
    peers: tuple[BgpPeer, ...] = ()
    route_reflectors: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _asn("Backend.ASN", self.asn)
        if self.mesh and self.route_reflectors:
            raise InvalidConfig("Backend.Mesh: a full mesh and RouteReflectors exclude each other "
                                "(with reflectors, the other nodes peer only with them)")
        ips = [p.ip for p in self.peers]
        if len(set(ips)) != len(ips):
            raise InvalidConfig("Backend.Peers: the same IP is listed twice")

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ASN": self.asn, "Mesh": self.mesh}
        if self.peers:
            out["Peers"] = [p.to_wire() for p in self.peers]
        if self.route_reflectors:
            out["RouteReflectors"] = list(self.route_reflectors)
        return out

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> BgpSettings:
        """The bgp fields of a ``Backend`` object (other fields are the caller's to check)."""
        asn = _asn("Backend.ASN", data["ASN"]) if data.get("ASN") is not None else DEFAULT_ASN
        reflectors = data.get("RouteReflectors") or []
        if not isinstance(reflectors, list) or not all(isinstance(r, str) and r for r in reflectors):
            raise InvalidConfig(f"Backend.RouteReflectors: must be a list of node names, not {reflectors!r}")
        if len(set(reflectors)) != len(reflectors):
            raise InvalidConfig("Backend.RouteReflectors: a node is listed twice")
        mesh = data.get("Mesh")
        if mesh is None:
            mesh = not reflectors
        if not isinstance(mesh, bool):
            raise InvalidConfig(f"Backend.Mesh: {mesh!r} is not true or false")
        peers = data.get("Peers") or []
        if not isinstance(peers, list):
            raise InvalidConfig(f"Backend.Peers: must be a list of {{\"IP\", \"ASN\"}} objects, not {peers!r}")
        return cls(asn=asn, mesh=mesh, route_reflectors=tuple(reflectors),
                   peers=tuple(BgpPeer.from_wire(f"Backend.Peers[{i}]", p) for i, p in enumerate(peers)))

    def describe(self) -> str:
        mode = "mesh" if self.mesh else f"reflectors {','.join(self.route_reflectors)}" if self.route_reflectors \
            else "no mesh"
        text = f"AS {self.asn}, {mode}"
        if self.peers:
            text += ", peers " + ",".join(f"{p.ip}:{p.asn}" for p in self.peers)
        return text
