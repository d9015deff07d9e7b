"""The bgp backend's checks (pure): bird runs and answers, every expected session is up, the subnet goes out.

- ``bird``: the node's bird (``<run-dir>/bird``) is alive and its control
  socket answers. Without it no route to a peer is learned or kept fresh
  (``persist`` leaves the old ones until their peers change).
- ``bgp-session``: the sessions this node should have, computed as the
  agent computes them (``backends.bgp_sessions.plan_sessions`` over the
  leases and the cluster's bgp settings), are each Established in bird. A
  session missing from bird means the agent has not configured it; one that
  is ``down`` with no info was disabled by hand (``birdc disable``).
- ``bgp-export``: bird originates exactly the node's leased subnet
  (``pod_subnet``) and sends it to every Established peer, or the other
  nodes have no route to this node's pods.

Other backends pass all three with "no bird". Routes to the peers are
``peer-state``'s (``proto bird``), checked there.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from pycni.cluster.backends.base import Peer, Underlay
from pycni.cluster.backends.bgp_config import BgpSettings
from pycni.cluster.backends.bgp_render import Session
from pycni.cluster.backends.bgp_sessions import plan_sessions
from pycni.doctor.result import CheckResult, fail, passed, skip, warn
from pycni.doctor.snapshot import LeaseView, Snapshot

__all__ = ["bgp_export", "bgp_session", "bird", "expected_sessions"]


def _not_bgp(snap: Snapshot, cid: str) -> CheckResult | None:
    store = snap.store
    if store is None or store.error is not None or store.backend_type is None:
        return skip(cid, "backend not known (see datastore)")
    if store.backend_type != "bgp":
        return passed(cid, f"backend {store.backend_type} runs no bird")
    return None


def _birdc(snap: Snapshot, command: str) -> str:
    socket = snap.bird.socket if snap.bird is not None else f"{snap.options.run_dir}/bird/bird.ctl"
    return f"birdc -s {socket} {command}"


def bird(snap: Snapshot) -> CheckResult:
    cid = "bird"
    other = _not_bgp(snap, cid)
    if other:
        return other
    if "bird" in snap.errors:
        return fail(cid, "cannot read the node's bird", [snap.errors["bird"]])
    view = snap.bird
    if view is None:
        return skip(cid, "bird was not asked")
    log = f"{snap.options.run_dir}/bird/bird.log"
    if view.error is not None and view.pid is None:
        return fail(cid, "bird is not running: no routes to other nodes are learned or withdrawn",
                    [view.error], f"the agent starts bird on its next converge (see agent-down); its log: {log}")
    if view.error is not None:
        return fail(cid, f"bird runs (pid {view.pid}) but its control socket does not answer", [view.error],
                    f"see {log}; kill {view.pid} and let the agent start it again")
    running = f"pid {view.pid}" if view.pid is not None else "not started by this node's agent"
    return passed(cid, f"bird answers on {view.socket} ({running}), {len(view.sessions)} BGP session(s)")


def _underlay(snap: Snapshot, own: LeaseView) -> Underlay:
    assert snap.node is not None
    link = snap.node.link(snap.underlay or "")
    ip = own.public_ip if isinstance(own.public_ip, IPv4Address) else None  # bgp is IPv4-only
    if link is None:
        return Underlay("?", ip, 0, ())
    return Underlay(link.name, ip, link.mtu, tuple(a.network for a in link.addresses))


def expected_sessions(snap: Snapshot) -> tuple[tuple[Session, ...], tuple[str, ...]]:
    """(sessions, refused peers) the agent would configure for this node; needs the store, the lease, the node."""
    assert snap.store is not None and snap.node is not None
    own = snap.own_lease
    assert own is not None

    def peer(lease: LeaseView) -> Peer:
        return Peer(lease.node, lease.subnet if isinstance(lease.subnet, IPv4Network) else None,
                    lease.public_ip if isinstance(lease.public_ip, IPv4Address) else None, lease.backend_type)

    settings = snap.store.bgp or BgpSettings()
    return plan_sessions(peer(own), [peer(lease) for lease in snap.store.leases], settings, _underlay(snap, own))


def _ready(snap: Snapshot, cid: str) -> CheckResult | None:
    other = _not_bgp(snap, cid)
    if other:
        return other
    if snap.own_lease is None:
        return skip(cid, f"no lease for {snap.options.node_name} (see agent-down)")
    if snap.node is None:
        return skip(cid, f"cannot list the node's links: {snap.errors.get('node', 'unknown error')}")
    if snap.bird is None or snap.bird.error is not None:
        return skip(cid, "bird does not answer (see bird)")
    return None


def bgp_session(snap: Snapshot) -> CheckResult:
    cid = "bgp-session"
    not_ready = _ready(snap, cid)
    if not_ready:
        return not_ready
    assert snap.bird is not None
    sessions, refused = expected_sessions(snap)
    found = {s.name: s for s in snap.bird.sessions}
    problems: list[str] = []
    disabled: list[str] = []
    for session in sessions:
        who = f"{session.name} ({f'node {session.node}' if session.node else f'AS {session.asn}'}, {session.ip})"
        status = found.get(session.name)
        if status is None:
            problems.append(f"{who}: not configured in bird")
        elif "Established" not in status.info:
            problems.append(f"{who}: {status.state} {status.info}".rstrip())
            if status.state == "down" and not status.info:
                disabled.append(session.name)
    evidence = [f"{s.name}: {s.state} {s.info}".rstrip() for s in snap.bird.sessions]
    if problems:
        if disabled and len(disabled) == len(problems):
            fix = _birdc(snap, f"enable {disabled[0]}") + "  (disabled by hand)"
        elif any("not configured" in p for p in problems):
            fix = "the agent configures bird on its next converge: make sure it runs (see agent-down), then restart it"
        else:
            fix = (f"{_birdc(snap, 'show protocols all ' + problems[0].split()[0])}; run pycni doctor on the peer "
                   "and check TCP port 179 between the nodes")
        return fail(cid, f"{len(problems)} of {len(sessions)} BGP session(s) not Established", problems + list(refused),
                    fix)
    if refused:
        return warn(cid, f"{len(sessions)} session(s) Established; {len(refused)} peer(s) cannot be peered with",
                    evidence + list(refused), "see the reason: put the nodes on one segment, or peer through a router")
    return passed(cid, f"{len(sessions)} BGP session(s) Established", evidence)


def bgp_export(snap: Snapshot) -> CheckResult:
    cid = "bgp-export"
    not_ready = _ready(snap, cid)
    if not_ready:
        return not_ready
    assert snap.bird is not None and snap.own_lease is not None
    subnet = snap.own_lease.subnet
    problems: list[str] = []
    if snap.bird.originated is None:
        pass  # bird refused to show them: in the evidence of the verdict below
    elif subnet not in snap.bird.originated:
        problems.append(f"bird originates {', '.join(map(str, snap.bird.originated)) or 'nothing'}, the lease is "
                        f"{subnet}")
    else:
        problems += [f"bird also originates {other}, which is not this node's lease" for other in
                     snap.bird.originated if other != subnet]
    silent = [name for name, prefixes in sorted(snap.bird.exported.items()) if subnet not in prefixes]
    problems += [f"{name}: {subnet} is not exported to it" for name in silent]
    if problems:
        fix = ("restart the agent (it rewrites bird.conf from the lease)" if problems[0].startswith("bird")
               else _birdc(snap, f"show route export {silent[0]}") + "; restart the agent")
        return fail(cid, f"the node's subnet {subnet} does not reach its BGP peers: their pods cannot reach "
                    "this node's", problems, fix)
    if snap.bird.refused:
        return warn(cid, "bird refused to show what it announces (it may be recovering after a restart)",
                    snap.bird.refused, "run pycni doctor again in a minute")
    return passed(cid, f"{subnet} announced to {len(snap.bird.exported)} Established peer(s)")
