"""The cluster as policy sees it, read from the store's keys: what ``explain`` and ``apply --dry-run`` judge.

Contract: pure, except ``read`` (one ``list_prefix`` of the cluster prefix).

- ``ClusterObjects.from_kvs(kvs, prefix)`` takes every key/value under the
  cluster prefix and keeps what policy needs: the Kubernetes objects
  (``<prefix>/k8s/...``), the pod endpoints (``<prefix>/endpoints/...``)
  and the nodes' addresses from the live subnet leases
  (``<prefix>/subnets/...``). Other keys are ignored; a value that does not
  decode is listed in ``unreadable``, never raised (one bad record must not
  hide the rest, as in the agent).
- A node owns its lease's public IP, its subnet's ``.0`` (the VXLAN VTEP's
  overlay address) and ``.1`` (the bridge gateway, the source of traffic
  from the node to its own pods): none of them is ever a pod.
- ``with_applied(models)`` is the same cluster after ``apply`` stored
  ``models`` (each replaces the object of the same kind, namespace and
  name); endpoints and nodes are unchanged.
- ``snapshot()`` is the evaluator's ``Snapshot``: the pods are those with an
  endpoint (``pods_with_endpoints``: labels and ports from their Pod object,
  addresses and node from the endpoints).
- ``reachability_changes(before, after)`` is what ``apply --dry-run`` reports:
  the known pod pairs (pods in both snapshots) whose new connections would
  change verdict, on every port the pods declare (TCP/80 when none does).
  A pod and itself are no pair: its traffic to itself never leaves it (the
  upstream e2e suite's "loopback" follows no policy rule). Only pairs whose
  verdict can change are evaluated (a pair's verdict depends on its two pods,
  their namespaces and the policies alone): pairs with a pod whose object,
  addresses or namespace labels changed, into pods a changed policy selects
  for ingress (before or after), and out of pods it selects for egress. So a
  dry run costs (affected pods) x (pods), not (pods)^2.
- ``dry_run_report(objects, models)`` is the text ``apply --dry-run`` adds:
  nothing when no pod is known, else a summary line and one line per
  changed pair (at most 200).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, cast

from pycni.cluster.kv import KeyValue
from pycni.cluster.lease import decode_lease
from pycni.policy.admin_model import AdminNetworkPolicy, BaselineAdminNetworkPolicy
from pycni.policy.endpoints import Endpoint, pods_with_endpoints
from pycni.policy.evaluate import Node, Snapshot
from pycni.policy.model import Namespace, NetworkPolicy, Pod, Protocol
from pycni.policy.reachability import diff, reachability
from pycni.policy.selectors import selector_matches
from pycni.policy.state import PolicyState
from pycni.policy.store import Model, ObjectStore

if TYPE_CHECKING:
    from pycni.cluster.kv import KV

__all__ = [
    "Change",
    "ClusterObjects",
    "declared_ports",
    "dry_run_report",
    "node_addresses",
    "reachability_changes",
    "read",
]

MAX_CHANGES_SHOWN = 200


@dataclass(frozen=True)
class ClusterObjects:
    namespaces: Mapping[str, Namespace] = field(default_factory=dict)
    pod_objects: Mapping[str, Pod] = field(default_factory=dict)  # by namespace/name
    policies: Mapping[str, NetworkPolicy] = field(default_factory=dict)  # by namespace/name
    endpoints: tuple[Endpoint, ...] = ()
    nodes: tuple[Node, ...] = ()
    unreadable: tuple[str, ...] = ()
    revision: int = 0
    admin_policies: Mapping[str, AdminNetworkPolicy] = field(default_factory=dict)  # by name
    baseline: BaselineAdminNetworkPolicy | None = None

    @classmethod
    def from_kvs(cls, kvs: Iterable[KeyValue], prefix: str, revision: int = 0) -> ClusterObjects:
        kvs = list(kvs)
        # Decoding needs only the prefix: the store's KV is never called here.
        state = PolicyState(ObjectStore(cast("KV", None), prefix))
        unreadable = state.load(kvs, revision)
        nodes: dict[str, Node] = {}
        subnets = f"{state.store.prefix}/subnets/"
        for kv in kvs:
            if not kv.key.startswith(subnets):
                continue
            try:
                lease = decode_lease(kv)
            except ValueError:
                unreadable.append(kv.key)
                continue
            addresses = node_addresses(str(lease.public_ip), str(lease.subnet.network_address),
                                       str(lease.subnet.network_address + 1))
            known = nodes.get(lease.node)
            nodes[lease.node] = Node(lease.node, addresses if known is None else (*known.ips, *addresses))
        return cls(dict(state.namespaces), dict(state.pod_objects), dict(state.policies),
                   tuple(state.endpoints.values()), tuple(sorted(nodes.values(), key=lambda n: n.name)),
                   tuple(unreadable), revision, dict(state.admin_policies), state.baseline)

    def with_applied(self, models: Sequence[Model]) -> ClusterObjects:
        namespaces, pods, policies = dict(self.namespaces), dict(self.pod_objects), dict(self.policies)
        admin, baseline = dict(self.admin_policies), self.baseline
        for model in models:
            if isinstance(model, Namespace):
                namespaces[model.name] = model
            elif isinstance(model, Pod):
                pods[model.key] = model
            elif isinstance(model, AdminNetworkPolicy):
                admin[model.name] = model
            elif isinstance(model, BaselineAdminNetworkPolicy):
                baseline = model
            else:
                policies[model.key] = model
        return replace(self, namespaces=namespaces, pod_objects=pods, policies=policies, admin_policies=admin,
                       baseline=baseline)

    def pods(self) -> list[Pod]:
        return pods_with_endpoints(self.pod_objects.values(), self.endpoints)

    def snapshot(self) -> Snapshot:
        return Snapshot(
            namespaces=tuple(self.namespaces[name] for name in sorted(self.namespaces)),
            pods=tuple(sorted(self.pods(), key=lambda pod: pod.key)),
            policies=tuple(self.policies[key] for key in sorted(self.policies)),
            nodes=self.nodes,
            admin_policies=tuple(self.admin_policies[name] for name in sorted(self.admin_policies)),
            baseline=self.baseline,
        )


def node_addresses(*ips: str) -> tuple[str, ...]:
    """Addresses in order, each once."""
    return tuple(dict.fromkeys(ips))


def read(kv: KV, prefix: str) -> ClusterObjects:
    """Everything policy needs, in one read of the cluster prefix."""
    normalised = "/" + prefix.strip().strip("/")
    kvs, revision = kv.list_prefix(normalised + "/")
    return ClusterObjects.from_kvs(kvs, normalised, revision)


@dataclass(frozen=True)
class Change:
    """A pod pair whose new connections on ``port``/``protocol`` would change verdict."""

    src: str
    dst: str
    port: int
    protocol: Protocol
    allowed: bool  # after the change


def declared_ports(*snapshots: Snapshot) -> list[tuple[int, Protocol]]:
    """Every (containerPort, protocol) the snapshots' pods declare, sorted; TCP/80 when there is none."""
    ports = {(cp.container_port, cp.protocol) for snap in snapshots for pod in snap.pods for cp in pod.ports}
    return sorted(ports, key=lambda pp: (pp[1], pp[0])) or [(80, "TCP")]


def _affected(before: Snapshot, after: Snapshot) -> tuple[list[str], set[str], set[str]]:
    """The known pods, those whose ingress (as destinations) and egress (as sources) may change verdict."""
    pods_before = {pod.key: pod for pod in before.pods if not pod.host_network}
    pods_after = {pod.key: pod for pod in after.pods if not pod.host_network}
    known = sorted(pods_before.keys() & pods_after.keys())
    ns_changed = {
        ns for ns in {pods_before[key].namespace for key in known}
        if before.namespace_labels(ns) != after.namespace_labels(ns)
    }
    changed = {key for key in known if pods_before[key] != pods_after[key] or pods_before[key].namespace in ns_changed}
    if before.admin_policies != after.admin_policies or before.baseline != after.baseline:
        changed = set(known)  # cluster-wide tiers: rare changes, judged over every known pair
    into, out_of = set(changed), set(changed)
    policies_before = {p.key: p for p in before.policies}
    policies_after = {p.key: p for p in after.policies}
    for key in policies_before.keys() | policies_after.keys():
        versions = [v for v in (policies_before.get(key), policies_after.get(key)) if v is not None]
        if len(versions) == 2 and versions[0] == versions[1]:
            continue
        for version in versions:
            selected = {
                pod_key for pod_key in known
                for pod in (pods_before[pod_key], pods_after[pod_key])
                if pod.namespace == version.namespace and selector_matches(version.pod_selector, pod.labels)
            }
            if "Ingress" in version.policy_types:
                into |= selected
            if "Egress" in version.policy_types:
                out_of |= selected
    return known, into, out_of


def reachability_changes(before: Snapshot, after: Snapshot) -> list[Change]:
    known, into, out_of = _affected(before, after)
    keys = sorted({(src, dst) for src in known for dst in into} | {(src, dst) for src in out_of for dst in known})
    pods_before = {pod.key: pod for pod in before.pods}
    pods_after = {pod.key: pod for pod in after.pods}
    pairs_before = [(pods_before[src], pods_before[dst]) for src, dst in keys if src != dst]
    pairs_after = [(pods_after[src], pods_after[dst]) for src, dst in keys if src != dst]
    changes = []
    for port, protocol in declared_ports(before, after):
        found = diff(reachability(before, port, protocol, pairs_before),
                     reachability(after, port, protocol, pairs_after))
        changes += [Change(src, dst, port, protocol, True) for src, dst in found.gained if src != dst]
        changes += [Change(src, dst, port, protocol, False) for src, dst in found.lost if src != dst]
    return sorted(changes, key=lambda c: (c.src, c.dst, c.protocol, c.port))


def dry_run_report(objects: ClusterObjects, models: Sequence[Model]) -> list[str]:
    """Lines saying which known pods (those with an endpoint) would gain or lose new connections."""
    before, after = objects.snapshot(), objects.with_applied(models).snapshot()
    known = {pod.key for pod in before.pods} & {pod.key for pod in after.pods}
    if not known:
        return []
    ports = ", ".join(f"{protocol}/{port}" for port, protocol in declared_ports(before, after))
    changes = reachability_changes(before, after)
    if not changes:
        return [f"reachability: no change among {len(known)} known pods ({ports})"]
    lost = sum(1 for c in changes if not c.allowed)
    lines = [f"reachability: {lost} lost, {len(changes) - lost} gained among {len(known)} known pods ({ports}):"]
    for change in changes[:MAX_CHANGES_SHOWN]:
        verdict = "allowed (denied now)" if change.allowed else "denied (allowed now)"
        lines.append(f"  {change.src} -> {change.dst} {change.protocol}/{change.port}: would be {verdict}")
    if len(changes) > MAX_CHANGES_SHOWN:
        lines.append(f"  ... and {len(changes) - MAX_CHANGES_SHOWN} more")
    return lines
