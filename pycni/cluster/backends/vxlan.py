"""The VXLAN backend: one VXLAN device per node, and per peer an FDB entry, a neighbour and a route.

For a peer with subnet S, underlay address U and VTEP MAC M (flannel's
layout, so the kernel never floods or learns):

- route  ``S via S.0 dev <vxlan> onlink``  (tagged with the agent's protocol)
- neighbour ``S.0 lladdr M`` (permanent) on the device
- FDB    ``M dst U`` (permanent) on the device

The device carries ``<own subnet>.0/32``, so the node's own traffic into
the overlay has a cluster source address. The VTEP MAC is derived from the
node name (``vtep_mac``): a node that reboots comes back with the MAC its
peers already hold. Pod MTU = underlay MTU - 50 (outer IPv4 20 + UDP 8 +
VXLAN 8 + inner Ethernet 14), unless the cluster config sets one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Interface
from typing import Any

from pycni.cluster.backends.base import Changes, Desired, Peer, RouteSpec, Underlay, diff
from pycni.cluster.backends.kernel import converge_routes

__all__ = ["OVERHEAD", "VxlanBackend", "device_name", "vtep_ip", "vtep_mac"]

OVERHEAD = 50
TYPE = "vxlan"


def vtep_mac(node: str) -> str:
    """A stable, locally administered unicast MAC for ``node``: 0a:58 + 4 bytes of sha256(name)."""
    digest = hashlib.sha256(node.encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x0A, 0x58, *digest[:4]))


def vtep_ip(peer: Peer) -> IPv4Address:
    """The address a node's VTEP carries in the overlay: the first address of its subnet (".0")."""
    return peer.subnet.network_address


def device_name(vni: int) -> str:
    return f"pycni.{vni}"


class VxlanBackend:
    type = TYPE

    def __init__(self, underlay: Underlay, node: str, *, vni: int = 1, port: int = 8472,
                 mtu: int | None = None) -> None:
        self.underlay = underlay
        self.node = node
        self.vni = vni
        self.port = port
        self.device = device_name(vni)
        self.mac = vtep_mac(node)
        self._mtu = mtu

    def pod_mtu(self) -> int:
        return self._mtu or self.underlay.mtu - OVERHEAD

    def backend_data(self) -> dict[str, Any]:
        return {"vtepMAC": self.mac, "vni": self.vni}

    def plan(self, own: Peer, peers: Iterable[Peer]) -> Desired:
        routes, fdb, neighbours, refused = set(), set(), set(), []
        for peer in peers:
            if peer.node == own.node:
                continue
            mac = str(peer.backend_data.get("vtepMAC", "")).lower()
            if peer.backend_type != TYPE or not mac:
                refused.append(f"peer '{peer.node}' uses backend '{peer.backend_type}' without a VTEP MAC; "
                               f"this node runs vxlan")
                continue
            gw = vtep_ip(peer)
            routes.add(RouteSpec(dst=peer.subnet, gw=gw, dev=self.device, onlink=True))
            neighbours.add((gw, mac))
            fdb.add((mac, peer.public_ip))
        return Desired(frozenset(routes), frozenset(fdb), frozenset(neighbours), tuple(refused))

    def converge(self, own: Peer, desired: Desired) -> Changes:
        from pycni.net import addrs, vxlan
        from pycni.net.sysctl import enable_ip_forward

        enable_ip_forward(4)
        added: list[str] = []
        removed: list[str] = []
        link = vxlan.ensure_vxlan(vxlan.VxlanSpec(
            name=self.device, vni=self.vni, port=self.port, local=self.underlay.ip, underlay=self.underlay.iface,
            mac=self.mac, mtu=self.pod_mtu(),
        ))
        address = IPv4Interface(f"{vtep_ip(own)}/32")
        present = addrs.list_addresses(self.device, 4)
        if address not in present:
            addrs.add_address(self.device, address)
            added.append(f"address {address} on {self.device} ({link.mac})")
        for stale in present:
            if stale != address:
                addrs.del_address(self.device, stale, missing_ok=True)
                removed.append(f"address {stale} on {self.device}")
        # FDB before neighbours before routes: a route is only usable once its next hop resolves.
        have_fdb = {(e.mac, e.dst) for e in vxlan.list_fdb(self.device) if e.dst is not None}
        to_add, to_remove = diff(desired.fdb, have_fdb)
        for mac, dst in to_add:
            vxlan.replace_fdb(self.device, mac, dst)
            added.append(f"fdb {mac} dst {dst}")
        have_neigh = {(n.ip, n.mac) for n in vxlan.list_neighbours(self.device) if n.permanent}
        n_add, n_remove = diff(desired.neighbours, have_neigh)
        for ip, mac in n_add:
            vxlan.replace_neighbour(self.device, ip, mac)
            added.append(f"neighbour {ip} lladdr {mac}")
        r_added, r_removed = converge_routes(desired)
        added += r_added
        removed += r_removed
        wanted_neigh_ips = {ip for ip, _ in desired.neighbours}
        for ip, mac in n_remove:
            if ip not in wanted_neigh_ips:  # a changed MAC was replaced in place above
                vxlan.delete_neighbour(self.device, ip)
            removed.append(f"neighbour {ip} lladdr {mac}")
        for mac, dst in to_remove:
            if vxlan.delete_fdb(self.device, mac, dst):
                removed.append(f"fdb {mac} dst {dst}")
        return Changes(tuple(added), tuple(removed))

    def teardown(self) -> None:
        from pycni.cluster.backends.kernel import converge_routes as _routes
        from pycni.net.links import delete_link

        _routes(Desired())
        delete_link(self.device, missing_ok=True)
