"""Checks of the node's own pod plumbing: bridge address, IPAM, result cache, namespaces, executor,
policy agent, and the synthetic pod. Pure.

A host-local reservation is leaked when no cached attachment has its
container ID (the runtime's DEL never came, or came after a crash); a
cached attachment whose namespace is gone is stale. Both are what
``pycni gc`` removes.
"""

from __future__ import annotations

from ipaddress import ip_address

from pycni.doctor.explain import explain
from pycni.doctor.result import CheckResult, fail, passed, skip, warn
from pycni.doctor.snapshot import Snapshot

__all__ = ["bridge_stale_addr", "cache_corrupt", "executor", "ipam_exhausted", "ipam_leak", "netns_leak", "policy",
           "synthetic_pod"]

RUNTIME_NETNS_PREFIXES = ("cni-", "netns-", "pycni-doctor-")


def _gc_fix(snap: Snapshot) -> str:
    o = snap.options
    return (f"NETCONFPATH={o.conf_dir} CNI_PATH={':'.join(o.bin_dirs)} CNI_CACHE_DIR={o.cache_dir} "
            f"pycni gc {o.network_name}")


def bridge_stale_addr(snap: Snapshot) -> CheckResult:
    cid = "bridge-stale-addr"
    winner = snap.winner
    if winner is None or winner.gateway is None:
        return skip(cid, "no bridge gateway in the config (see conf-missing)")
    if snap.node is None:
        return skip(cid, f"cannot list links: {snap.errors.get('node', 'unknown error')}")
    bridge = snap.node.link(winner.bridge or snap.options.bridge)
    if bridge is None:
        return passed(cid, f"no bridge {winner.bridge} yet (the first pod creates it)")
    present = bridge.addresses6 if winner.gateway.version == 6 else bridge.addresses  # IPv6-only: its gateway
    stale = [a for a in present if a != winner.gateway]
    if stale:
        return fail(cid, f"{bridge.name} already has an IP address different from {winner.gateway}: "
                    "every ADD fails", [f"{bridge.name}: {', '.join(str(a) for a in present)}"],
                    f"ip addr del {stale[0]} dev {bridge.name}")
    return passed(cid, f"{bridge.name} carries {winner.gateway}")


def _usable(snap: Snapshot) -> int:
    winner = snap.winner
    assert winner is not None
    return sum(max(r.num_addresses - 3, 1) for r in winner.ranges)  # network, broadcast, gateway


def ipam_exhausted(snap: Snapshot) -> CheckResult:
    cid = "ipam-exhausted"
    winner = snap.winner
    if winner is None or not winner.ranges:
        return skip(cid, "no host-local range in the config (see conf-missing)")
    if snap.ipam is None or snap.ipam.error:
        return skip(cid, f"cannot read the IPAM data dir: {snap.ipam.error if snap.ipam else 'not collected'}")
    used = [r for r in snap.ipam.reservations
            if any(ip_address(r.ip) in rng for rng in winner.ranges if _is_ip(r.ip))]
    size = _usable(snap)
    evidence = [f"{len(used)} of {size} addresses of {', '.join(map(str, winner.ranges))} reserved in "
                f"{snap.ipam.directory}"]
    if len(used) >= size:
        return fail(cid, "no IP addresses available in range set: new pods cannot start", evidence, _gc_fix(snap))
    if len(used) >= 0.9 * size:
        return warn(cid, f"the node's range is {100 * len(used) // size}% used", evidence, _gc_fix(snap))
    return passed(cid, evidence[0])


def _is_ip(text: str) -> bool:
    try:
        ip_address(text)
    except ValueError:
        return False
    return True


def ipam_leak(snap: Snapshot) -> CheckResult:
    cid = "ipam-leak"
    if snap.ipam is None or snap.ipam.error:
        return skip(cid, f"cannot read the IPAM data dir: {snap.ipam.error if snap.ipam else 'not collected'}")
    if snap.cache is None:
        return skip(cid, f"cannot read the result cache: {snap.errors.get('cache', 'unknown error')}")
    known = {c.container_id for c in snap.cache if c.container_id}
    leaked = [r for r in snap.ipam.reservations if r.container_id not in known]
    if leaked:
        return fail(cid, f"{len(leaked)} address(es) reserved for containers the runtime no longer has",
                    [f"{snap.ipam.directory}/{r.ip}: {r.container_id} {r.ifname}" for r in leaked[:10]],
                    _gc_fix(snap))
    return passed(cid, f"{len(snap.ipam.reservations)} reservation(s), each with a cached attachment")


def cache_corrupt(snap: Snapshot) -> CheckResult:
    cid = "cache-corrupt"
    if snap.cache is None:
        return skip(cid, f"cannot read the result cache: {snap.errors.get('cache', 'unknown error')}")
    bad = [c for c in snap.cache if c.error]
    if bad:
        path = f"{snap.options.cache_dir}/results/{bad[0].name}"
        return fail(cid, "cached results that cannot be read: DEL of those pods fails", [
            f"{c.name}: {c.error}" for c in bad], f"rm {path}")
    return passed(cid, f"{len(snap.cache)} cached attachment(s) readable")


def netns_leak(snap: Snapshot) -> CheckResult:
    cid = "netns-leak"
    if snap.netns is None:
        return skip(cid, f"cannot list /run/netns: {snap.errors.get('netns', 'unknown error')}")
    leaked = [n.name for n in snap.netns if n.name.startswith(RUNTIME_NETNS_PREFIXES) and not n.in_use]
    if leaked:
        return warn(cid, f"{len(leaked)} runtime namespace(s) with no process and no attachment",
                    [f"/run/netns/{name}" for name in leaked[:10]], f"ip netns del {leaked[0]}")
    return passed(cid, "no leaked runtime namespaces")


def executor(snap: Snapshot) -> CheckResult:
    cid = "executor"
    ex = snap.executor
    if ex is None:
        return skip(cid, f"executor not probed: {snap.errors.get('executor', 'unknown error')}")
    if ex.stale_shims:
        return fail(cid, "installed plugins belong to another pycni: runtimes that call them fail",
                    list(ex.stale_shims), f"pycni install --bin-dir {snap.options.bin_dirs[0]} --force")
    if not ex.exists:
        return passed(cid, f"no executor socket at {ex.socket}: plugins run in-process")
    if not ex.answers:
        return warn(cid, f"executor socket {ex.socket} does not answer: every plugin call pays a cold start",
                    [ex.error or "connect failed"], "systemctl restart pycni-executor (or pycni executor)")
    return passed(cid, f"executor answers on {ex.socket}; installed shims are this pycni's")


def policy(snap: Snapshot) -> CheckResult:
    cid = "policy"
    winner = snap.winner
    if winner is None or "netpol" not in winner.types:
        return passed(cid, "NetworkPolicy is off on this node")
    if snap.policy is None:
        return skip(cid, "the policy agent was not asked")
    ok, detail = snap.policy
    if not ok and "is not what the agent committed" in detail:
        return fail(cid, "the policy table was changed behind the agent: pods are not isolated as policy says",
                    [detail], "wait for the agent's periodic resync (it rewrites the table) or restart the agent; "
                    "find who edits inet pycni_policy (nft flush ruleset?)")
    if not ok:
        return fail(cid, "NetworkPolicy is on but not enforced: pods' ADD waits for the policy agent and fails",
                    [detail], "restart the agent (it runs the policy agent); see its log")
    return passed(cid, detail)


def synthetic_pod(snap: Snapshot) -> CheckResult:
    cid = "synthetic-pod"
    result = snap.synthetic
    if result is None:
        return skip(cid, snap.errors.get("synthetic", "not run"))
    if result.ok:
        return passed(cid, f"ADD, CHECK and DEL of a throw-away pod worked ({result.seconds:.2f}s)")
    error = result.error or "unknown error"
    cause = explain(error)
    evidence = [f"{result.step.upper()}: {error}"]
    if cause is not None:
        evidence.append(f"cause: {cause.id}")
        return fail(cid, f"a pod cannot be created: {result.step.upper()} fails ({cause.id})", evidence, cause.fix)
    return fail(cid, f"a pod cannot be created: {result.step.upper()} fails", evidence,
                "run the same ADD by hand with PYCNI_DEBUG=1: pycni add <network> <netns>")
