"""Checks of the cluster side: the datastore, the node agent, and whether the node's files agree with its lease.

Pure functions of a ``Snapshot``. The agent counts as down when its status
file is missing, its pid is gone (or is not a pycni agent any more), it has
not reconciled for three resync intervals, or the datastore holds no lease
for the node (it is not renewing).
"""

from __future__ import annotations

from ipaddress import ip_network

from pycni.cluster.backends.bgp import BIRD_ROUTE_PROTO
from pycni.cluster.owned_routes import ROUTE_PROTO
from pycni.doctor.result import CheckResult, fail, passed, skip, warn
from pycni.doctor.snapshot import Snapshot

__all__ = ["agent_down", "cidr_mismatch", "cidr_overlap", "datastore", "node_ip", "stale_after"]


def stale_after(resync: float) -> float:
    """Seconds without a reconcile pass after which a live agent counts as stuck."""
    return max(3 * resync, 15.0)


def _start_fix(snap: Snapshot) -> str:
    o = snap.options
    return (f"start the agent: pycni agent --node-name {o.node_name} --etcd-endpoints {','.join(o.etcd_endpoints)} "
            f"--cni-conf-dir {o.conf_dir} --run-dir {o.run_dir} ...; see its log")


def datastore(snap: Snapshot) -> CheckResult:
    cid = "datastore"
    store = snap.store
    endpoints = ",".join(snap.options.etcd_endpoints)
    if store is None:
        return skip(cid, "the datastore was not asked")
    if store.error is not None:
        text = store.error.lower()
        if "certificate" in text or "ssl" in text or "tls" in text:
            fix = "check --etcd-cafile, --etcd-certfile and --etcd-keyfile against etcd's certificates"
        elif "auth" in text or "permission" in text or "401" in text or "403" in text:
            fix = "check the client certificate's user and its etcd role"
        else:
            fix = f"start etcd or fix --etcd-endpoints (tried {endpoints})"
        return fail(cid, f"etcd at {endpoints} cannot be used", [store.error], fix)
    if store.network is None:
        return fail(cid, f"etcd answers but holds no cluster config under {snap.options.etcd_prefix}",
                    [f"{snap.options.etcd_prefix}/config is missing"],
                    "pycni cluster init --network 10.244.0.0/16 (with the same --etcd-endpoints/--etcd-prefix)")
    return passed(cid, f"etcd at {endpoints}: network {store.network}, backend {store.backend_type}, "
                  f"{len(store.leases)} lease(s)")


def agent_down(snap: Snapshot) -> CheckResult:
    cid = "agent-down"
    agent = snap.agent
    if agent is None:
        return skip(cid, f"cannot read {snap.options.run_dir}: {snap.errors.get('agent', 'unknown error')}")
    status = agent.status
    if status is None:
        return fail(cid, f"no agent status in {snap.options.run_dir} ({agent.status_error}): the agent is not "
                    "running here, or runs with another --run-dir", [], _start_fix(snap))
    age = agent.now - status.last_reconcile
    seen = f"pid {status.pid}, node {status.node}, subnet {status.subnet}, last reconcile {age:.1f}s ago"
    if not agent.pid_alive:
        return fail(cid, f"the agent (pid {status.pid}) is not running", [seen], _start_fix(snap))
    if not agent.pid_is_agent:
        return fail(cid, f"pid {status.pid} of the status file is not a pycni agent any more", [seen],
                    _start_fix(snap))
    if age > stale_after(status.resync_seconds):
        return fail(cid, f"the agent (pid {status.pid}) runs but has not reconciled for {age:.0f}s "
                    f"(every {status.resync_seconds:g}s expected)", [seen], "see the agent's log; restart it")
    if status.node != snap.options.node_name:
        return warn(cid, f"the agent runs as node {status.node!r}, doctor was asked about "
                    f"{snap.options.node_name!r}", [seen], f"pycni doctor --node-name {status.node}")
    store = snap.store
    if store is not None and store.error is None and store.network is not None and snap.own_lease is None:
        return fail(cid, f"the agent runs but etcd holds no lease for {status.node}: it is not renewing it",
                    [seen], "see the agent's log (datastore errors); restart it")
    return passed(cid, f"agent running ({seen})")


def cidr_mismatch(snap: Snapshot) -> CheckResult:
    cid = "cidr-mismatch"
    lease = snap.own_lease
    store = snap.store
    if store is None or store.error is not None or store.network is None:
        return skip(cid, "no cluster config to compare with (see datastore)")
    if lease is None:
        return skip(cid, f"no lease for {snap.options.node_name} (see agent-down)")
    problems: list[str] = []
    if lease.subnet.version != store.network.version or not lease.subnet.subnet_of(store.network):  # type: ignore[arg-type]
        problems.append(f"lease {lease.subnet} is outside the cluster network {store.network}")
    winner = snap.winner
    if winner is not None and winner.ranges and tuple(winner.ranges) != (lease.subnet,):
        problems.append(f"{winner.name} allocates from {', '.join(map(str, winner.ranges))}, "
                        f"the node's lease is {lease.subnet}")
    env = snap.subnet_env
    if env is not None:
        try:
            v6 = "_IPV6" if store.network.version == 6 else ""  # an IPv6-only node writes only PYCNI_IPV6_*
            env_subnet = ip_network(env.get(f"PYCNI{v6}_SUBNET", ""), strict=False)
            env_network = ip_network(env.get(f"PYCNI{v6}_NETWORK", ""))
        except ValueError:
            problems.append(f"subnet.env is malformed: {dict(env)}")
        else:
            if env_subnet != lease.subnet:
                problems.append(f"subnet.env says PYCNI{v6}_SUBNET={env.get(f'PYCNI{v6}_SUBNET')}, the lease is "
                                f"{lease.subnet}")
            if env_network != store.network:
                problems.append(f"subnet.env says PYCNI{v6}_NETWORK={env_network}, the cluster network is "
                                f"{store.network}")
    if problems:
        return fail(cid, "the node's files do not match its lease", problems,
                    "restart the agent so it rewrites the conflist and subnet.env from its lease")
    return passed(cid, f"conflist, subnet.env and lease agree on {lease.subnet} in {store.network}")


def node_ip(snap: Snapshot) -> CheckResult:
    cid = "node-ip"
    lease = snap.own_lease
    if lease is None:
        return skip(cid, "no lease for this node (see datastore / agent-down)")
    if snap.node is None:
        return skip(cid, f"cannot list the node's addresses: {snap.errors.get('node', 'unknown error')}")
    holders = [link.name for link in snap.node.links
               if any(a.ip == lease.public_ip for a in link.all_addresses)]
    iface = snap.options.iface
    if holders and iface and iface not in holders:
        return fail(cid, f"the lease publishes {lease.public_ip}, which is on {holders[0]}, not on --iface {iface}",
                    [f"{iface} has no {lease.public_ip}"], "restart the agent with the --iface peers reach it by")
    if not holders:
        present = [f"{link.name}: {', '.join(str(a) for a in link.all_addresses)}"
                   for link in snap.node.links if link.addresses or link.addresses6]
        return fail(cid, f"the lease publishes {lease.public_ip}, which no interface of this node has", present,
                    "restart the agent so it leases again with the node's current address")
    return passed(cid, f"{lease.public_ip} (published in the lease) is on {holders[0]}")


def cidr_overlap(snap: Snapshot) -> CheckResult:
    """The pod network must not overlap the node's own networks: those packets would never reach a pod."""
    cid = "cidr-overlap"
    store = snap.store
    if store is None or store.error is not None or store.network is None:
        return skip(cid, "no cluster network to compare with (see datastore)")
    if snap.node is None:
        return skip(cid, f"cannot list the node's addresses and routes: {snap.errors.get('node', 'unknown error')}")
    vni = store.vni if store.vni is not None else 1
    ours = {snap.options.bridge, f"pycni.{vni}", f"pycni6.{vni}", "pycni-wg"}
    if snap.winner is not None and snap.winner.bridge:
        ours.add(snap.winner.bridge)
    found = [f"{link.name}: {address}" for link in snap.node.links if link.name not in ours
             for address in link.addresses if address.network.overlaps(store.network)]
    # Pod routes are the agent's (proto 124) or, on a bgp node, those bird learned from the peers (proto bird).
    protocols = {ROUTE_PROTO, BIRD_ROUTE_PROTO} if store.backend_type == "bgp" else {ROUTE_PROTO}
    found += [f"route {r.dst}{f' via {r.gw}' if r.gw else ''} dev {r.dev} (proto {r.protocol})"
              for r in snap.node.routes
              if r.dst.prefixlen > 0 and r.dst.overlaps(store.network) and r.protocol not in protocols
              and r.dev not in ours]
    if found:
        return fail(cid, f"the pod network {store.network} overlaps this node's own networks", found,
                    "choose a pod network no node uses: pycni cluster init --network <free CIDR> --force")
    return passed(cid, f"{store.network} overlaps none of the node's own addresses and routes")
