"""The policy agent's Prometheus metrics (text format 0.0.4, no dependency: as the executor and agent render theirs).

Series:

- ``pycni_policy_packets_total{namespace,policy,direction,verdict}``: new
  connections' packets that policy rules counted. ``verdict="accept"``: the
  accept rules of a policy's chain (one series per policy and direction);
  ``verdict="drop"``: the drops at the end of isolated pods' chains, labelled
  with the pod's namespace and the names of the policies isolating it,
  comma-separated (a drop is the union's verdict, never one policy's). Read
  from the kernel's rule counters **when scraped**, never on the agent's hot
  path; a rule's owner comes from its chain (policy chains and the jumps of
  pod chains are named after hashes of the policy keys the agent knows), its
  comment when the agent no longer knows the policy. Counters restart when a
  sync rewrites a chain (a policy edit), which Prometheus reads as a reset.
- ``pycni_policy_sync_seconds{kind}`` (histogram): compile and apply, per
  sync kind (full, partial, none).
- ``pycni_policy_syncs_total{kind}``, ``pycni_policy_sync_failures_total``.
- ``pycni_policy_apply_to_enforced_seconds`` (histogram): from the arrival of
  the oldest watch event a sync enforces to that sync's commit, for syncs
  that changed the kernel. (etcd gives no commit time, so the store write
  itself is not in it: the watch delivers within milliseconds.)
- ``pycni_policy_plugin_requests_total{op}``: netpol plugin requests.
- ``pycni_policy_counter_read_errors_total``: scrapes whose table listing failed.

``PolicyMetrics(agent, read_table)`` observes the agent (``agent.on_sync``);
``read_table`` returns the ``nftables`` array of ``nft -j list table inet
pycni_policy`` (a seam: tests pass a fake listing). ``register(metrics,
agent)`` adds the rendering to the node agent's ``AgentMetrics``.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pycni.policy.compile import FAMILY, TABLE, policy_chain_name
from pycni.policy.model import Direction

if TYPE_CHECKING:
    from pycni.cluster.agent_metrics import AgentMetrics
    from pycni.policy.agent import PolicyAgent
    from pycni.policy.enforcer import SyncStats

__all__ = ["PolicyMetrics", "packet_counts", "register"]

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
Labels = tuple[tuple[str, str], ...]
PacketKey = tuple[str, str, str, str]  # namespace, policy, direction, verdict
_DIRECTIONS: dict[Direction, str] = {"Ingress": "ingress", "Egress": "egress"}


def _read_kernel_table() -> list[dict[str, Any]]:
    from pycni.net.firewall.nft import list_json

    return list_json(f"table {FAMILY} {TABLE}")


class _Histogram:
    def __init__(self) -> None:
        self.counts: dict[Labels, list[int]] = {}
        self.sums: dict[Labels, float] = defaultdict(float)

    def observe(self, key: Labels, seconds: float) -> None:
        counts = self.counts.setdefault(key, [0] * (len(BUCKETS) + 1))
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                counts[i] += 1
        counts[-1] += 1
        self.sums[key] += seconds

    def render(self, lines: list[str], name: str, text: str) -> None:
        lines += [f"# HELP {name} {text}", f"# TYPE {name} histogram"]
        for key, counts in sorted(self.counts.items()):
            for bound, count in zip((*(f"{b:g}" for b in BUCKETS), "+Inf"), counts, strict=True):
                lines.append(f"{name}_bucket{_labels((*key, ('le', bound)))} {count}")
            lines.append(f"{name}_sum{_labels(key)} {self.sums[key]:.6f}")
            lines.append(f"{name}_count{_labels(key)} {counts[-1]}")


class PolicyMetrics:
    def __init__(self, agent: PolicyAgent, read_table: Callable[[], list[dict[str, Any]]] | None = None) -> None:
        self.agent = agent
        self.read_table = read_table or _read_kernel_table
        self._lock = threading.Lock()
        self._sync_seconds = _Histogram()
        self._apply_to_enforced = _Histogram()
        self.read_errors = 0
        agent.on_sync.append(self.observe_sync)

    def observe_sync(self, stats: SyncStats, seconds: float, waited: float | None) -> None:
        """The agent's observer (called under its lock: only arithmetic here)."""
        with self._lock:
            self._sync_seconds.observe((("kind", stats.kind),), seconds)
            if waited is not None and stats.kind != "none":
                self._apply_to_enforced.observe((), waited)

    def render(self) -> str:
        lines: list[str] = []
        packets = self._packets()
        _counter(lines, "pycni_policy_packets_total",
                 "Packets of new connections counted by policy rules (accept: a policy's rules; drop: an isolated "
                 "pod's final drop, labelled with the policies isolating it).",
                 {(("namespace", k[0]), ("policy", k[1]), ("direction", k[2]), ("verdict", k[3])): v
                  for k, v in packets.items()})
        stats = self.agent.stats
        with self._lock:
            self._sync_seconds.render(lines, "pycni_policy_sync_seconds", "Time to compile and apply one sync.")
            self._apply_to_enforced.render(lines, "pycni_policy_apply_to_enforced_seconds",
                                           "From a watch event's arrival to the commit of the sync enforcing it.")
            read_errors = self.read_errors
        _counter(lines, "pycni_policy_syncs_total", "Syncs run, by kind (full, partial, none).",
                 {(("kind", kind),): count for kind, count in dict(stats.syncs).items()})
        _counter(lines, "pycni_policy_sync_failures_total", "Syncs that failed (the kernel kept its state).",
                 {(): stats.failures})
        _counter(lines, "pycni_policy_plugin_requests_total", "Requests from the netpol plugin, by operation.",
                 {(("op", op),): count for op, count in dict(stats.plugin_requests).items()})
        _counter(lines, "pycni_policy_counter_read_errors_total", "Scrapes whose nft table listing failed.",
                 {(): read_errors})
        lines += ["# HELP pycni_policy_start_seconds The agent's cold start by phase (read, decode, compile, kernel).",
                  "# TYPE pycni_policy_start_seconds gauge"]
        lines.extend(f'pycni_policy_start_seconds{{phase="{phase}"}} {seconds:.6f}'
                     for phase, seconds in dict(stats.start_seconds).items())
        return "\n".join(lines) + "\n"

    def _packets(self) -> dict[PacketKey, int]:
        try:
            listing = self.read_table()
        except Exception:
            with self._lock:
                self.read_errors += 1
            return {}
        return packet_counts(listing, tuple(self.agent.state.policies))


def packet_counts(listing: Iterable[Mapping[str, Any]], policy_keys: Iterable[str]) -> dict[PacketKey, int]:
    """Packets per (namespace, policy, direction, verdict) from an ``nft -j list table`` array. Pure."""
    by_chain = {policy_chain_name(key, direction): (key, word)
                for key in policy_keys for direction, word in _DIRECTIONS.items()}
    rules = [item["rule"] for item in listing if isinstance(item, Mapping) and "rule" in item]
    jumps: dict[str, list[str]] = defaultdict(list)
    for rule in rules:
        for expr in rule.get("expr", ()):
            target = (expr.get("jump") or expr.get("goto") or {}).get("target") if isinstance(expr, dict) else None
            if target in by_chain:
                jumps[rule.get("chain", "")].append(by_chain[target][0])
    counts: dict[PacketKey, int] = defaultdict(int)
    for rule in rules:
        packets, verdict = _counter_and_verdict(rule.get("expr", ()))
        if packets is None or verdict is None:
            continue
        chain, comment = rule.get("chain", ""), str(rule.get("comment", ""))
        if verdict == "accept":
            owner = by_chain.get(chain) or _accept_owner(comment)
            if owner is None:
                continue
            key, direction = owner
            namespace, _, name = key.partition("/")
            counts[(namespace, name, direction, "accept")] += packets
        else:
            dropped = _drop_owner(comment, jumps.get(chain))
            if dropped is not None:
                counts[(*dropped, "drop")] += packets
    return dict(counts)


def _counter_and_verdict(exprs: Iterable[Any]) -> tuple[int | None, str | None]:
    packets, verdict = None, None
    for expr in exprs:
        if not isinstance(expr, dict):
            continue
        if "counter" in expr and isinstance(expr["counter"], dict):
            packets = int(expr["counter"].get("packets", 0))
        elif "accept" in expr:
            verdict = "accept"
        elif "drop" in expr:
            verdict = "drop"
    return packets, verdict


def _accept_owner(comment: str) -> tuple[str, str] | None:
    # "x/allow ingress[0] peer[1]": the policy key, then the direction and rule index
    parts = comment.split()
    if len(parts) < 2 or "/" not in parts[0]:
        return None
    direction = parts[1].split("[", 1)[0]
    return (parts[0], direction) if direction in ("ingress", "egress") else None


def _drop_owner(comment: str, jumped: list[str] | None) -> tuple[str, str, str] | None:
    # "x/b isolated for ingress by x/a, x/b"
    parts = comment.split()
    if len(parts) < 4 or parts[1:3] != ["isolated", "for"] or "/" not in parts[0]:
        return None
    namespace, direction = parts[0].split("/", 1)[0], parts[3]
    keys = jumped or [key.strip() for key in comment.split(" by ", 1)[-1].split(",") if key.strip()]
    names = sorted(key.partition("/")[2] or key for key in keys)
    return namespace, ",".join(names), direction


def _counter(lines: list[str], name: str, text: str, series: Mapping[Labels, int]) -> None:
    lines += [f"# HELP {name} {text}", f"# TYPE {name} counter"]
    lines.extend(f"{name}{_labels(key)} {value}" for key, value in sorted(series.items()))


def _labels(pairs: Labels) -> str:
    if not pairs:
        return ""
    escaped = (v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"') for _, v in pairs)
    return "{" + ",".join(f'{k}="{v}"' for (k, _), v in zip(pairs, escaped, strict=True)) + "}"


def register(metrics: AgentMetrics, agent: PolicyAgent,
             read_table: Callable[[], list[dict[str, Any]]] | None = None) -> PolicyMetrics:
    """Serve the policy agent's series with the node agent's (call before ``agent.start()``, so the first
    sync is observed too)."""
    collector = PolicyMetrics(agent, read_table)
    metrics.add_collector(collector.render)
    return collector
