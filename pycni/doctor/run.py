"""The checks in the order they are reported, root causes first, and how their verdicts combine. Pure.

``CHECKS`` lists each check with the root causes it depends on. ``judge``
runs them over a snapshot; a failing (or warning) check whose root cause
failed keeps its verdict but points at it ("... (see agent-down)"), so the
operator reads the cause first and the consequences as such. A check that
only restates its root (the policy agent lives in the node agent) is
skipped instead (``SKIPPED_WITH``). ``exit_code``:
0 when nothing fails (warnings allowed), 1 when a check fails; ignored ids
(``--ignore``, as kubeadm's preflight) are reported but never fail the run.
``SYNTHETIC_ROOTS`` are the causes that make a synthetic pod pointless (it
would only fail, or wait for a timeout).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import replace

from pycni.doctor import (
    checks_agent,
    checks_bgp,
    checks_conf,
    checks_kernel,
    checks_local,
    checks_peers,
    checks_wireguard,
)
from pycni.doctor.result import CheckResult, skip
from pycni.doctor.snapshot import Snapshot

__all__ = ["CHECKS", "CHECK_IDS", "SKIPPED_WITH", "SYNTHETIC_ROOTS", "exit_code", "ignored", "judge", "roots_failing"]

Check = Callable[[Snapshot], CheckResult]

CHECKS: tuple[tuple[str, Check, tuple[str, ...]], ...] = (
    ("datastore", checks_agent.datastore, ()),
    ("agent-down", checks_agent.agent_down, ()),
    ("conf-missing", checks_conf.conf_missing, ("agent-down",)),
    ("plugin-missing", checks_conf.plugin_missing, ()),
    ("plugin-not-exec", checks_conf.plugin_not_exec, ()),
    ("version-skew", checks_conf.version_skew, ("plugin-missing", "plugin-not-exec")),
    ("cidr-mismatch", checks_agent.cidr_mismatch, ("datastore", "agent-down")),
    ("cidr-overlap", checks_agent.cidr_overlap, ("datastore",)),
    ("node-ip", checks_agent.node_ip, ("datastore",)),
    ("ip-forward", checks_kernel.ip_forward, ()),
    ("br-netfilter", checks_kernel.br_netfilter, ()),
    ("rp-filter", checks_kernel.rp_filter, ()),
    ("iptables-mixed", checks_kernel.iptables_mixed, ()),
    ("forward-drop", checks_kernel.forward_drop, ("iptables-mixed",)),
    ("vxlan-port", checks_kernel.vxlan_port, ("iptables-mixed",)),
    ("vtep-mac", checks_peers.vtep_mac, ("agent-down",)),
    ("bird", checks_bgp.bird, ("datastore", "agent-down")),
    ("bgp-session", checks_bgp.bgp_session, ("agent-down", "node-ip", "bird")),
    ("bgp-export", checks_bgp.bgp_export, ("agent-down", "cidr-mismatch", "bird")),
    ("peer-state", checks_peers.peer_state, ("datastore", "agent-down", "node-ip", "vtep-mac", "vxlan-port",
                                             "forward-drop", "bird", "bgp-session")),
    ("mtu", checks_peers.mtu, ("agent-down",)),
    ("wireguard", checks_wireguard.wireguard, ("datastore", "agent-down")),
    ("bridge-stale-addr", checks_local.bridge_stale_addr, ("cidr-mismatch",)),
    ("ipam-leak", checks_local.ipam_leak, ("cache-corrupt",)),
    ("ipam-exhausted", checks_local.ipam_exhausted, ("ipam-leak",)),
    ("cache-corrupt", checks_local.cache_corrupt, ()),
    ("netns-leak", checks_local.netns_leak, ()),
    ("conntrack", checks_kernel.conntrack, ()),
    ("csum-offload", checks_kernel.csum_offload, ()),
    ("link-managers", checks_kernel.link_managers, ()),
    ("executor", checks_local.executor, ()),
    ("policy", checks_local.policy, ("agent-down", "br-netfilter")),
    ("synthetic-pod", checks_local.synthetic_pod,
     ("conf-missing", "plugin-missing", "plugin-not-exec", "version-skew", "agent-down", "policy",
      "bridge-stale-addr", "ipam-exhausted", "cidr-mismatch")),
)
CHECK_IDS = tuple(cid for cid, _, _ in CHECKS)
# check -> roots whose failure makes it say nothing new: it skips with "see <root>".
SKIPPED_WITH: dict[str, tuple[str, ...]] = {
    "policy": ("agent-down",),
    "bridge-stale-addr": ("cidr-mismatch",),  # which gateway is right is what cidr-mismatch disputes
}
SYNTHETIC_ROOTS = ("datastore", "agent-down", "conf-missing", "plugin-missing", "plugin-not-exec", "version-skew",
                   "policy", "bridge-stale-addr", "ipam-exhausted")


def judge(snap: Snapshot, only: Collection[str] | None = None) -> list[CheckResult]:
    """Every check's verdict in report order (``only``: just those ids)."""
    results: list[CheckResult] = []
    failed: set[str] = set()
    for cid, check, roots in CHECKS:
        if only is not None and cid not in only:
            continue
        restated = next((r for r in SKIPPED_WITH.get(cid, ()) if r in failed), None)
        result = check(snap) if restated is None else skip(cid, f"not judged: see {restated}")
        assert result.id == cid, f"check {cid} answered as {result.id}"
        if result.status in ("fail", "warn"):
            root = next((r for r in roots if r in failed), None)
            if root is not None:
                result = result.see(root)
        if result.status == "fail":
            failed.add(cid)
        results.append(result)
    return _with_causes_fixes(results)


def _with_causes_fixes(results: list[CheckResult]) -> list[CheckResult]:
    """A failure classified as another check's cause ("cause: plugin-missing") takes that check's fix, which
    names this node's paths rather than the defaults."""
    fixes = {r.id: r.fix for r in results if r.fix}
    out = []
    for r in results:
        cause = next((line.removeprefix("cause: ") for line in r.evidence if line.startswith("cause: ")), None)
        out.append(replace(r, fix=fixes[cause]) if cause in fixes and cause != r.id else r)
    return out


def roots_failing(results: Sequence[CheckResult], roots: Collection[str]) -> list[str]:
    return [r.id for r in results if r.status == "fail" and r.id in roots]


def exit_code(results: Sequence[CheckResult], ignore: Collection[str] = ()) -> int:
    return 1 if any(r.status == "fail" and r.id not in ignore for r in results) else 0


def ignored(results: Sequence[CheckResult], ignore: Collection[str]) -> list[CheckResult]:
    """Results with ignored failures shown as warnings (kubeadm shows ignored errors as warnings)."""
    return [replace(r, status="warn", summary=f"{r.summary} (ignored)") if r.status == "fail" and r.id in ignore
            else r for r in results]
