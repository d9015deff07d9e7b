"""The wireguard backend's plan (pure): which WireGuard peers and routes a node wants.

For each peer lease with backend ``wireguard`` and a valid ``PublicKey``:

- a WireGuard peer: that key, endpoint ``PublicIP:Port``, AllowedIPs = the
  peer's pod subnet plus its node address (/32, so replies a host-network
  pod sends from the node address are accepted: calico#9751), the
  cluster's keepalive and PSK;
- a route ``subnet via subnet.0 dev <device> onlink`` (the agent's route
  protocol): only the node address rides in AllowedIPs, never a route, so
  underlay traffic (etcd, WireGuard's own UDP) stays off the tunnel.

Fail closed: a peer without a usable key gets no route, and the agent's
blackhole for the whole cluster network (``WireguardDesired.blackhole``)
drops its traffic instead of letting it out by the default route. A key
claimed by two nodes (or by a peer and this node) is refused for all of
them: WireGuard routes by key, and one key cannot serve two subnets.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Network

from pycni.cluster.backends.base import Desired, Peer, RouteSpec
from pycni.cluster.backends.wireguard_keys import from_base64, to_hex
from pycni.spec.errors import InvalidConfig

__all__ = ["TYPE", "WgPeer", "WireguardDesired", "plan_wireguard"]

TYPE = "wireguard"


@dataclass(frozen=True, order=True)
class WgPeer:
    public_key: str  # hex, as the UAPI takes it
    node: str
    endpoint: str  # "ip:port"
    allowed_ips: tuple[str, ...]  # sorted CIDRs
    keepalive: int = 0
    psk: str | None = None  # hex
    address: str = ""  # the peer device's address (its subnet's first): where a nudge to start a handshake goes


@dataclass(frozen=True)
class WireguardDesired(Desired):
    peers: frozenset[WgPeer] = frozenset()
    blackhole: IPv4Network | None = None  # the cluster network: the floor under the peers' routes


def _key_of(peer: Peer) -> str | None:
    value = peer.backend_data.get("PublicKey")
    if not isinstance(value, str):
        return None
    try:
        return to_hex(from_base64(value))
    except InvalidConfig:
        return None


def _port_of(peer: Peer, default: int) -> int:
    port = peer.backend_data.get("Port", default)
    return port if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536 else default


def plan_wireguard(own: Peer, peers: Iterable[Peer], *, device: str, own_key: str, network: IPv4Network,
                   default_port: int, keepalive: int = 0, psk: str | None = None) -> WireguardDesired:
    """``own_key`` and ``psk`` are hex; ``default_port`` is used for a lease that names no port."""
    candidates: list[tuple[Peer, str]] = []
    refused: list[str] = []
    for peer in sorted(peers, key=lambda p: p.node):
        if peer.node == own.node:
            continue
        key = _key_of(peer)
        if peer.backend_type != TYPE or key is None:
            refused.append(f"peer '{peer.node}' ({peer.subnet}) publishes no WireGuard key (backend "
                           f"'{peer.backend_type}'); its traffic is dropped until it does (this node runs wireguard)")
            continue
        candidates.append((peer, key))
    counts = Counter(key for _, key in candidates)
    counts[own_key] += 1
    wg_peers, routes = set(), set()
    for peer, key in candidates:
        if counts[key] > 1:
            holders = sorted(p.node for p, k in candidates if k == key) + ([own.node] if key == own_key else [])
            refused.append(f"peer '{peer.node}' ({peer.subnet}) shares its WireGuard public key with "
                           f"{', '.join(n for n in holders if n != peer.node)}; refused until its key is unique")
            continue
        if peer.subnet is None:  # an IPv6-only lease: the agent refuses such a cluster on wireguard
            continue
        allowed = tuple(sorted({str(peer.subnet), f"{peer.public_ip}/32"}))
        wg_peers.add(WgPeer(public_key=key, node=peer.node, endpoint=f"{peer.public_ip}:{_port_of(peer, default_port)}",
                            allowed_ips=allowed, keepalive=keepalive, psk=psk,
                            address=str(peer.subnet.network_address)))
        routes.add(RouteSpec(dst=peer.subnet, gw=peer.subnet.network_address, dev=device, onlink=True))
    return WireguardDesired(routes=frozenset(routes), refused=tuple(refused), peers=frozenset(wg_peers),
                            blackhole=network)
