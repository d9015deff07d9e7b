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

Dual stack, as Flannel does it: IPv6 pod traffic takes a second VXLAN
device (``pycni6.<vni>``, same VNI and port) over the node's IPv6 underlay
address, with the same three entries per peer in IPv6 (route to the peer's
IPv6 subnet via its ``::`` address, neighbour, FDB towards its PublicIPv6)
and its own MAC, published as ``BackendV6Data: {"vtepMAC"}``. Only when the
node has an IPv6 underlay address; a peer without one gets no IPv6 entries
and is reported. An IPv6 underlay costs 20 bytes more (70), so with it the
pods get underlay MTU - 70 for both families.

IPv6-only (peers and the node without an IPv4 side): only the IPv6 device
and its entries; the IPv4 device is removed if an earlier config made one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import Any, Literal

from pycni.cluster.backends.base import Changes, Desired, Peer, RouteSpec, Underlay, diff
from pycni.cluster.backends.kernel import converge_routes

__all__ = ["OVERHEAD", "OVERHEAD_V6", "VxlanBackend", "device_name", "device_name_v6", "vtep_ip", "vtep_mac"]

OVERHEAD = 50
OVERHEAD_V6 = 70  # outer IPv6 header: 40 instead of 20
TYPE = "vxlan"


def vtep_mac(node: str) -> str:
    """A stable, locally administered unicast MAC for ``node``: 0a:58 + 4 bytes of sha256(name)."""
    digest = hashlib.sha256(node.encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x0A, 0x58, *digest[:4]))


def vtep_ip(peer: Peer) -> IPv4Address:
    """The address a node's VTEP carries in the overlay: the first address of its subnet (".0")."""
    assert peer.subnet is not None, "an IPv6-only peer has no IPv4 VTEP"
    return peer.subnet.network_address


def device_name(vni: int) -> str:
    return f"pycni.{vni}"


def device_name_v6(vni: int) -> str:
    return f"pycni6.{vni}"  # at most 15 characters for any 24-bit VNI


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
        self.device6 = device_name_v6(vni)
        self.mac6 = vtep_mac(node + "/v6")
        self._mtu = mtu

    def pod_mtu(self) -> int:
        return self._mtu or self.underlay.mtu - (OVERHEAD_V6 if self.underlay.ipv6 is not None else OVERHEAD)

    def backend_data(self) -> dict[str, Any]:
        return {"vtepMAC": self.mac, "vni": self.vni}

    def backend_v6_data(self) -> dict[str, Any]:
        """What peers need to reach this node over IPv6 ({} without an IPv6 underlay)."""
        return {"vtepMAC": self.mac6, "vni": self.vni} if self.underlay.ipv6 is not None else {}

    def plan(self, own: Peer, peers: Iterable[Peer]) -> Desired:
        routes, fdb, neighbours, refused = set(), set(), set(), []
        for peer in peers:
            if peer.node == own.node:
                continue
            ipv4 = peer.subnet is not None and peer.public_ip is not None and own.subnet is not None
            mac = str((peer.backend_data if ipv4 else peer.backend_v6_data).get("vtepMAC", "")).lower()
            if peer.backend_type != TYPE or not mac:
                refused.append(f"peer '{peer.node}' uses backend '{peer.backend_type}' without a VTEP MAC; "
                               f"this node runs vxlan")
                continue
            if peer.subnet is not None and peer.public_ip is not None and own.subnet is not None:
                gw = vtep_ip(peer)
                routes.add(RouteSpec(dst=peer.subnet, gw=gw, dev=self.device, onlink=True))
                neighbours.add((gw, mac))
                fdb.add((mac, peer.public_ip))
            if own.ipv6_subnet is not None and peer.ipv6_subnet is not None:
                self._plan_v6(peer, routes, fdb, neighbours, refused)
        return Desired(frozenset(routes), frozenset(fdb), frozenset(neighbours), tuple(refused))

    def _plan_v6(self, peer: Peer, routes: set[RouteSpec], fdb: set[tuple[str, Any]],
                 neighbours: set[tuple[Any, str]], refused: list[str]) -> None:
        assert peer.ipv6_subnet is not None
        mac = str(peer.backend_v6_data.get("vtepMAC", "")).lower()
        if self.underlay.ipv6 is None or peer.public_ipv6 is None or not mac:
            side = "this node has" if self.underlay.ipv6 is None else f"peer '{peer.node}' has"
            refused.append(f"no IPv6 overlay to peer '{peer.node}' ({peer.ipv6_subnet}): {side} no IPv6 underlay "
                           f"address")
            return
        gw = peer.ipv6_subnet.network_address
        routes.add(RouteSpec(dst=peer.ipv6_subnet, gw=gw, dev=self.device6, onlink=True))
        neighbours.add((gw, mac))
        fdb.add((mac, peer.public_ipv6))

    def converge(self, own: Peer, desired: Desired) -> Changes:
        from pycni.net.links import delete_link
        from pycni.net.sysctl import enable_ip_forward

        added: list[str] = []
        removed: list[str] = []
        planes = []
        if own.subnet is not None and self.underlay.ip is not None:
            enable_ip_forward(4)
            planes.append(_Plane(self.device, 4, self.underlay.ip, self.mac, IPv4Interface(f"{vtep_ip(own)}/32")))
        elif delete_link(self.device, missing_ok=True):  # IPv6-only
            removed.append(f"device {self.device}")
        if own.ipv6_subnet is not None and self.underlay.ipv6 is not None:
            enable_ip_forward(6)
            planes.append(_Plane(self.device6, 6, self.underlay.ipv6, self.mac6,
                                 IPv6Interface(f"{own.ipv6_subnet.network_address}/128")))
        elif delete_link(self.device6, missing_ok=True):
            removed.append(f"device {self.device6}")
        # FDB before neighbours before routes: a route is only usable once its next hop resolves.
        pending = [self._converge_plane(plane, desired, added, removed) for plane in planes]
        r_added, r_removed = converge_routes(desired)
        added += r_added
        removed += r_removed
        for finish in pending:
            finish()
        return Changes(tuple(added), tuple(removed))

    def _converge_plane(self, plane: _Plane, desired: Desired, added: list[str],
                        removed: list[str]) -> Callable[[], None]:
        """The device, its address, FDB and neighbours of one family; returns the removals to run after routes."""
        from pycni.net import addrs, vxlan

        link = vxlan.ensure_vxlan(vxlan.VxlanSpec(
            name=plane.device, vni=self.vni, port=self.port, local=plane.local, underlay=self.underlay.iface,
            mac=plane.mac, mtu=self.pod_mtu(),
        ))
        present = addrs.list_addresses(plane.device, plane.family)
        if plane.address not in present:
            addrs.add_address(plane.device, plane.address)
            added.append(f"address {plane.address} on {plane.device} ({link.mac})")
        for stale in present:
            if stale != plane.address:
                addrs.del_address(plane.device, stale, missing_ok=True)
                removed.append(f"address {stale} on {plane.device}")
        want_fdb = {(mac, dst) for mac, dst in desired.fdb if dst.version == plane.local.version}
        have_fdb = {(e.mac, e.dst) for e in vxlan.list_fdb(plane.device) if e.dst is not None}
        to_add, to_remove = diff(want_fdb, have_fdb)
        for mac, dst in to_add:
            vxlan.replace_fdb(plane.device, mac, dst)
            added.append(f"fdb {mac} dst {dst}")
        want_neigh = {(ip, mac) for ip, mac in desired.neighbours if ip.version == plane.family}
        have_neigh = {(n.ip, n.mac) for n in vxlan.list_neighbours(plane.device, plane.family) if n.permanent}
        n_add, n_remove = diff(want_neigh, have_neigh)
        for ip, mac in n_add:
            vxlan.replace_neighbour(plane.device, ip, mac)
            added.append(f"neighbour {ip} lladdr {mac}")

        def remove_stale() -> None:
            wanted_neigh_ips = {ip for ip, _ in want_neigh}
            for ip, mac in n_remove:
                if ip not in wanted_neigh_ips:  # a changed MAC was replaced in place above
                    vxlan.delete_neighbour(plane.device, ip)
                removed.append(f"neighbour {ip} lladdr {mac}")
            for mac, dst in to_remove:
                if vxlan.delete_fdb(plane.device, mac, dst):
                    removed.append(f"fdb {mac} dst {dst}")

        return remove_stale

    def teardown(self) -> None:
        from pycni.cluster.backends.kernel import converge_routes as _routes
        from pycni.net.links import delete_link

        _routes(Desired())
        delete_link(self.device, missing_ok=True)
        delete_link(self.device6, missing_ok=True)


@dataclass(frozen=True)
class _Plane:
    """One VXLAN device: the IPv4 one, or in a dual-stack cluster the IPv6 one."""

    device: str
    family: Literal[4, 6]
    local: IPv4Address | IPv6Address
    mac: str
    address: IPv4Interface | IPv6Interface
