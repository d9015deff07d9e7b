"""Checks of what connects this node to the others: per-peer kernel entries, the VTEP MAC, MTUs. Pure.

What the backend needs per peer with subnet S, underlay address U and VTEP
MAC M (pycni.cluster.backends): vxlan a route ``S via S.0 dev pycni.N
onlink``, a permanent neighbour ``S.0 lladdr M`` and an FDB entry ``M dst
U``; host-gw a route ``S via U``. Both tagged with the agent's route
protocol. bgp: a route to ``S`` that bird learned and installed, tagged
``proto bird``, via U or via a router that peers for the nodes (bird's
sessions are checked by checks_bgp). ``--probe`` results (pings to each peer's pod gateway, and a
don't-fragment ping at pod MTU - 28) count here too.
"""

from __future__ import annotations

from collections import Counter

from pycni.cluster.backends.bgp import BIRD_ROUTE_PROTO
from pycni.cluster.backends.vxlan import OVERHEAD
from pycni.cluster.backends.vxlan import vtep_mac as derived_vtep_mac
from pycni.cluster.owned_routes import ROUTE_PROTO
from pycni.doctor.result import CheckResult, fail, passed, skip, warn
from pycni.doctor.snapshot import LeaseView, Snapshot

__all__ = ["mtu", "peer_state", "vtep_mac"]


def _peers(snap: Snapshot) -> list[LeaseView]:
    assert snap.store is not None
    return [lease for lease in snap.store.leases if lease.node != snap.options.node_name]


def _ready(snap: Snapshot, cid: str) -> CheckResult | None:
    if snap.store is None or snap.store.error is not None or snap.store.backend_type is None:
        return skip(cid, "no leases to compare with (see datastore)")
    if snap.node is None:
        return skip(cid, f"cannot list the node's kernel state: {snap.errors.get('node', 'unknown error')}")
    return None


def peer_state(snap: Snapshot) -> CheckResult:
    cid = "peer-state"
    not_ready = _ready(snap, cid)
    if not_ready:
        return not_ready
    assert snap.store is not None and snap.node is not None
    bgp = snap.store.backend_type == "bgp"
    protocol = BIRD_ROUTE_PROTO if bgp else ROUTE_PROTO  # who installs the routes to the peers
    routes = {(r.dst, r.gw, r.dev) for r in snap.node.routes if r.protocol == protocol}
    problems: list[str] = []
    dev = snap.vxlan_device or "pycni.1"
    entries = snap.node.peer_entries
    for peer in _peers(snap):
        if snap.store.backend_type == "vxlan":
            gw = peer.subnet.network_address
            if (peer.subnet, gw, dev) not in routes:
                problems.append(f"{peer.node}: route {peer.subnet} via {gw} dev {dev} onlink missing")
            mac = (peer.vtep_mac or "").lower()
            if entries is None:
                problems.append(f"{peer.node}: no VXLAN device {dev}")
                continue
            if (gw, mac) not in entries.neighbours:
                problems.append(f"{peer.node}: neighbour {gw} lladdr {mac} on {dev} missing")
            if (mac, peer.public_ip) not in entries.fdb:
                problems.append(f"{peer.node}: fdb {mac} dst {peer.public_ip} on {dev} missing")
        elif snap.store.backend_type == "wireguard":  # S via S.0 dev pycni-wg onlink (backends.wireguard_plan)
            if (peer.subnet, peer.subnet.network_address, "pycni-wg") not in routes:
                problems.append(f"{peer.node}: route {peer.subnet} via {peer.subnet.network_address} dev pycni-wg "
                                "missing")
        elif bgp and not any(dst == peer.subnet for dst, _, _ in routes):
            # Any next hop will do: behind a router that peers for the nodes (Backend.Peers) it is the router.
            problems.append(f"{peer.node}: no route {peer.subnet} proto bird (via {peer.public_ip} or a router)")
        elif not bgp and not any(dst == peer.subnet and gw == peer.public_ip for dst, gw, _ in routes):
            problems.append(f"{peer.node}: route {peer.subnet} via {peer.public_ip} missing")
    silent = [f"{p.peer}: {p.target} does not answer a ping" for p in snap.probes or () if not p.reachable]
    if problems:
        fix = ("bird installs these from its BGP sessions: see bird and bgp-session, then birdc -s "
               f"{snap.options.run_dir}/bird/bird.ctl show route" if bgp
               else "the agent repairs these within a resync interval: make sure it runs (see agent-down), then "
               "restart it")
        return fail(cid, f"this node lacks kernel entries for its peers ({snap.store.backend_type})",
                    problems + silent, fix)
    if silent and snap.store.backend_type in ("host-gw", "bgp"):
        # A host-gw peer's gateway exists only once a pod runs there: silence is not proof of a broken path.
        return warn(cid, "a peer's pod gateway does not answer (no pod there yet, or the path is broken)",
                    silent, "pycni doctor --probe on that peer; check the firewalls and the underlay between them")
    if silent:
        return fail(cid, "entries are in place but peers' overlay addresses do not answer", silent,
                    "run pycni doctor on the peer (its firewall: forward-drop, vxlan-port); check the underlay "
                    "between the nodes")
    quiet = [f"{p.peer}: its VTEP {p.target} answers, its pod gateway {p.gateway} does not"
             for p in snap.probes or () if p.gateway is not None and p.gateway_ok is False]
    if quiet:
        return warn(cid, "a peer's pod gateway does not answer (no pod there yet, or its bridge lost its address)",
                    quiet, "pycni doctor on that peer (see bridge-stale-addr there)")
    probed = f", {len(snap.probes)} peer(s) answer pings" if snap.probes else ""
    return passed(cid, f"routes{' and VXLAN entries' if snap.store.backend_type == 'vxlan' else ''} for "
                  f"{len(_peers(snap))} peer(s) in place{probed}")


def vtep_mac(snap: Snapshot) -> CheckResult:
    cid = "vtep-mac"
    not_ready = _ready(snap, cid)
    if not_ready:
        return not_ready
    assert snap.store is not None and snap.node is not None
    if snap.store.backend_type != "vxlan":
        return passed(cid, f"backend {snap.store.backend_type} has no VTEP")
    macs = Counter((lease.vtep_mac or "").lower() for lease in snap.store.leases if lease.vtep_mac)
    problems = [f"VTEP MAC {mac} is published by {n} leases: "
                + ", ".join(lease.node for lease in snap.store.leases if (lease.vtep_mac or "").lower() == mac)
                for mac, n in macs.items() if n > 1]
    own = snap.own_lease
    dev = snap.vxlan_device or "pycni.1"
    link = snap.node.link(dev)
    fix = "restart the agent (it sets the MAC it publishes)"
    # Without a lease (expired while the agent is down) the MAC to hold is still the one the agent
    # derives from the node name and will publish again.
    wanted, source = ((own.vtep_mac, "the lease publishes") if own is not None and own.vtep_mac
                      else (derived_vtep_mac(snap.options.node_name), "the agent derives"))
    if link is not None and link.mac.lower() != wanted.lower():
        problems.append(f"{dev} has MAC {link.mac}, {source} {wanted}")
        fix = f"ip link set {dev} address {wanted} (and MACAddressPolicy=none for {dev})"
    if problems:
        return fail(cid, "peers send this node's overlay traffic to the wrong MAC", problems, fix)
    return passed(cid, f"{dev} MAC matches the lease; no two nodes share a VTEP MAC")


def mtu(snap: Snapshot) -> CheckResult:
    cid = "mtu"
    not_ready = _ready(snap, cid)
    if not_ready:
        return not_ready
    assert snap.store is not None and snap.node is not None
    own = snap.own_lease
    problems: list[str] = []
    underlay = snap.node.link(snap.underlay or "")
    overhead = {"vxlan": OVERHEAD, "wireguard": 60}.get(snap.store.backend_type or "", 0)
    limit = underlay.mtu - overhead if underlay is not None else None
    vxlan = snap.node.link(snap.vxlan_device or "pycni.1") if snap.store.backend_type == "vxlan" else None
    if limit is not None and vxlan is not None and vxlan.mtu > limit:
        problems.append(f"{vxlan.name} MTU {vxlan.mtu} > {underlay.name if underlay else '?'} MTU "
                        f"{underlay.mtu if underlay else '?'} - {overhead}")
    winner = snap.winner
    pod_mtu = winner.mtu if winner is not None else None
    if pod_mtu is not None and limit is not None and pod_mtu > limit:
        problems.append(f"pods get MTU {pod_mtu} > {limit} (underlay {underlay.mtu if underlay else '?'} "
                        f"- {overhead})")
    mine = own.pod_mtu if own is not None else pod_mtu
    for peer in _peers(snap):
        if peer.pod_mtu is not None and mine is not None and peer.pod_mtu != mine:
            problems.append(f"{peer.node} gives its pods MTU {peer.pod_mtu}, this node {mine}")
    cached = False
    for probe in snap.probes or ():
        if probe.reachable and probe.df_ok is False:
            if probe.df_error and "mtu=" in probe.df_error:
                cached = True
                problems.append(f"{probe.peer}: the kernel holds a path MTU of "
                                f"{probe.df_error.rsplit('mtu=', 1)[1]} towards {probe.target} "
                                f"({probe.df_error}), below the pod MTU")
            else:
                problems.append(f"{probe.peer}: a don't-fragment ping of {probe.df_size} bytes to {probe.target} "
                                "is lost while a small one answers (an MTU black hole)")
    if problems:
        fix = (f"set the pod MTU to {limit} on every node (cluster config Backend.MTU), or restore the underlay MTU"
               if limit else "make MTUs agree across nodes")
        if cached and len(problems) == sum(1 for p in problems if "holds a path MTU" in p):
            fix = "ip route flush cache (a path MTU learned while a link was smaller outlives the fix for 10 min)"
        return fail(cid, "MTUs do not fit: large packets are dropped", problems, fix)
    shown = f"pod MTU {mine}" if mine else "MTU"
    return passed(cid, f"{shown} fits the underlay ({underlay.mtu if underlay else '?'}) and matches the peers")
