"""Read bird's ``show protocols all`` reply (pure): the BGP peers with type, state, since and info.

Rows are ``1002`` lines (``name proto table state since info...``); a
protocol's details follow as ``1006`` lines (``Neighbor address: ...``).
Columns are split on whitespace, never by position: a name longer than the
header's column shifts the others. ``since`` is epoch seconds because the
rendered config pins ``timeformat protocol "%s"``; anything else (a bird
started by hand) is kept as text. The peer type comes from the protocol
name as bgp_render writes it (``Mesh_`` ...); a session bird made itself
(``neighbor range``: ``dynbgp1``) is ``dynamic``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pycni.cluster.backends.bgp_control import Reply

__all__ = ["PEER_TYPES", "BgpPeerStatus", "ProtocolStatus", "bgp_peers", "parse_protocols", "peer_type"]

PEER_TYPES = {"Mesh": "node-to-node mesh", "Global": "global", "Reflector": "route reflector",
              "Client": "reflector client"}


@dataclass(frozen=True)
class ProtocolStatus:
    name: str
    proto: str
    table: str
    state: str
    since: str
    info: str
    details: dict[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class BgpPeerStatus:
    name: str
    address: str
    type: str
    state: str  # bird's protocol state: up, start, down...
    since: int | str  # epoch seconds when bird printed them so
    info: str  # BGP state (Established, Active, Connect...) and the last error, if any
    asn: str = ""
    description: str = ""

    def to_wire(self) -> dict[str, Any]:
        return {"name": self.name, "peerAddress": self.address, "peerType": self.type, "asn": self.asn,
                "state": self.state, "since": self.since, "info": self.info, "description": self.description}


def parse_protocols(reply: Reply) -> list[ProtocolStatus]:
    rows: list[tuple[list[str], dict[str, str]]] = []
    for code, text in reply:
        if code == 1002:
            words = text.split()
            if len(words) >= 5:
                rows.append((words, {}))
        elif code == 1006 and rows:
            key, sep, value = text.strip().partition(":")
            if sep and value.strip():
                rows[-1][1].setdefault(key.strip(), value.strip())
    return [ProtocolStatus(name=w[0], proto=w[1], table=w[2], state=w[3], since=w[4], info=" ".join(w[5:]),
                           details=d) for w, d in rows]


def peer_type(name: str) -> str:
    prefix = name.split("_", 1)[0]
    if prefix in PEER_TYPES and "_" in name:
        return PEER_TYPES[prefix]
    return "dynamic" if name.startswith("dynbgp") else "other"


def _address(p: ProtocolStatus) -> str:
    if "Neighbor address" in p.details:
        return p.details["Neighbor address"]
    prefix, _, rest = p.name.partition("_")
    return rest.replace("_", ".") if prefix in PEER_TYPES else "-"


def bgp_peers(protocols: list[ProtocolStatus]) -> list[BgpPeerStatus]:
    """The BGP sessions among ``protocols``, in bird's order."""
    return [
        BgpPeerStatus(name=p.name, address=_address(p), type=peer_type(p.name), state=p.state,
                      since=int(p.since) if p.since.isdigit() else p.since, info=p.info,
                      asn=p.details.get("Neighbor AS", ""), description=p.details.get("Description", ""))
        for p in protocols if p.proto == "BGP"
    ]
