"""Which BGP sessions a node opens (pure): its lease, the peers' leases and the bgp settings in, sessions out.

- Mesh (default): a session to every other node; the node with the lower
  address connects, the other waits (``passive``), as Calico does, so two
  nodes never race two connections.
- Route reflectors (``RouteReflectors`` names nodes): a reflector peers
  with every node and reflects for the non-reflectors (``client``); the
  other nodes peer only with the reflectors.
- Global peers (``Peers``): every node opens a session to each of them.

A peer that is not on this node's layer-2 segment is refused with a message,
and gets no session. This is deliberate: a node announces its subnet with
its own address as the next hop, which a node on another segment cannot
use without a router in between that knows the pod routes. Put such nodes
behind a top-of-rack router that peers with them (``Peers``, iBGP as a
route reflector), or use the vxlan backend. The same holds for a global
peer: eBGP sessions here are single-hop.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address

from pycni.cluster.backends.base import Peer, Underlay
from pycni.cluster.backends.bgp_config import BgpSettings
from pycni.cluster.backends.bgp_render import Session

__all__ = ["plan_sessions"]

TYPE = "bgp"


def _off_segment(underlay: Underlay, ip: IPv4Address) -> bool:
    return not any(ip in net for net in underlay.networks)


def _off_segment_message(underlay: Underlay, what: str, ip: IPv4Address) -> str:
    connected = ", ".join(str(n) for n in underlay.networks) or "none"
    return (f"bgp cannot peer with {what}: its address {ip} is not on the same layer-2 segment as "
            f"{underlay.iface} (connected: {connected}); its routes' next hop would be unreachable. Peer both "
            f"segments with a router that reflects pod routes (Backend.Peers), or use the vxlan backend")


def plan_sessions(own: Peer, peers: Iterable[Peer], settings: BgpSettings,
                  underlay: Underlay) -> tuple[tuple[Session, ...], tuple[str, ...]]:
    """(sessions, refused peers with the reason) for node ``own``."""
    refused: list[str] = []
    nodes: list[Peer] = []
    for peer in sorted(peers, key=lambda p: p.node):
        if peer.node == own.node:
            continue
        if peer.backend_type != TYPE:
            refused.append(f"peer '{peer.node}' uses backend '{peer.backend_type}'; this node runs bgp")
        elif peer.public_ip is None or own.public_ip is None:  # IPv6-only: the agent refuses it on bgp
            continue
        elif _off_segment(underlay, peer.public_ip):
            refused.append(_off_segment_message(underlay, f"node '{peer.node}' ({peer.subnet})", peer.public_ip))
        else:
            nodes.append(peer)
    reflectors = set(settings.route_reflectors)
    sessions: list[Session] = []
    for peer in nodes:
        if settings.mesh:
            kind = "mesh"
        elif peer.node in reflectors:
            kind = "reflector"
        elif own.node in reflectors:
            kind = "client"
        else:
            continue
        assert peer.public_ip is not None and own.public_ip is not None  # filtered above
        passive = kind == "mesh" and peer.public_ip > own.public_ip
        sessions.append(Session(ip=peer.public_ip, kind=kind, asn=settings.asn, node=peer.node, passive=passive))
    node_ips = {p.public_ip for p in nodes} | {own.public_ip}
    for glob in settings.peers:
        if glob.ip in node_ips:
            continue  # a node listed as a global peer already has its node session
        if _off_segment(underlay, glob.ip):
            refused.append(_off_segment_message(underlay, f"global peer {glob.ip} (AS {glob.asn})", glob.ip))
            continue
        sessions.append(Session(ip=glob.ip, kind="global", asn=glob.asn))
    return tuple(sorted(sessions)), tuple(refused)
