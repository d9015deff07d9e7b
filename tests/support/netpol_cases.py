"""The NetworkPolicy truth tables in tests/data/netpol: load them, replay their steps.

The data is runtime-agnostic: the evaluator's unit test, the compiler's tests
and a real lab with 9 pods replay the same files.

``_model.yaml`` is the cluster (nodes and their addresses, namespaces and their
labels, pods with node, address and labels, the ports and protocols every pod
serves). Every other ``*.yaml`` is one case::

    name: default-deny-ingress                # the file's stem
    upstream: should support a '...' policy   # the upstream e2e test it encodes,
    source: pycni                             #   or this, for pycni's own corner cases
    about: one sentence
    steps:                                    # replayed in order, state carries over
    - apply: [<NetworkPolicy manifest>, ...]  # create, or replace by namespace/name (also
                                              #   AdminNetworkPolicy, BaselineAdminNetworkPolicy)
      delete: [x/deny-all, anp:ops]           # policies, by key: namespace/name, anp:<name>, banp:default
      labels:                                 # the complete new label set (as re-applying the object does)
        namespaces: {y: {ns: y, ns2: updated}}
        pods: {x/b: {pod: b, pod2: updated}}
      probes:                                 # after the changes above
      - ports: [80, 81]
        protocols: [TCP, UDP, SCTP]
        reachability: |                       # rows = source, columns = destination;
          -    x/a  x/b ...                   # "." connects, "X" does not
          x/a  .    X   ...

Every step's probes cover every protocol of the model. The diagonal (a pod to
itself) is written as policy decides it; upstream does not check loopback, and a
runtime may skip it likewise (``Probe.expected_pairs(skip_loopback=True)``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pycni.policy.evaluate import Node, Snapshot
from pycni.policy.model import (
    ContainerPort,
    IPBlock,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Pod,
    PolicyPeer,
    PolicyPort,
    PolicyRule,
    Requirement,
    labels_of,
)

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "netpol"
MODEL_FILE = DATA_DIR / "_model.yaml"

Pair = tuple[str, str]


@dataclass(frozen=True)
class ModelPod:
    key: str
    node: str
    ip: str
    labels: dict[str, str]

    @property
    def namespace(self) -> str:
        return self.key.split("/")[0]

    @property
    def name(self) -> str:
        return self.key.split("/")[1]


@dataclass(frozen=True)
class Cluster:
    nodes: dict[str, tuple[str, ...]]
    namespaces: dict[str, dict[str, str]]
    pods: dict[str, ModelPod]
    ports: tuple[int, ...]
    protocols: tuple[str, ...]

    @property
    def pod_keys(self) -> list[str]:
        return list(self.pods)

    def container_ports(self) -> list[dict[str, Any]]:
        """The containerPorts every pod declares: serve-80-tcp and so on."""
        return [
            {"name": f"serve-{port}-{proto.lower()}", "containerPort": port, "protocol": proto}
            for port in self.ports
            for proto in self.protocols
        ]


@dataclass(frozen=True)
class Probe:
    port: int
    protocol: str
    expected: dict[Pair, bool]
    text: str

    def expected_pairs(self, skip_loopback: bool = False) -> dict[Pair, bool]:
        return {pair: ok for pair, ok in self.expected.items() if not (skip_loopback and pair[0] == pair[1])}


@dataclass(frozen=True)
class Step:
    apply: tuple[dict[str, Any], ...] = ()
    delete: tuple[str, ...] = ()
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    pod_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    probes: tuple[Probe, ...] = ()


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    about: str
    upstream: str | None
    steps: tuple[Step, ...]


@dataclass
class State:
    """What is in force after some steps: policy manifests by namespace/name, current labels."""

    policies: dict[str, dict[str, Any]]
    namespace_labels: dict[str, dict[str, str]]
    pod_labels: dict[str, dict[str, str]]

    def apply(self, step: Step) -> None:
        for manifest in step.apply:
            self.policies[policy_key(manifest)] = manifest
        for key in step.delete:
            del self.policies[key]
        self.namespace_labels.update(step.namespace_labels)
        self.pod_labels.update(step.pod_labels)


def policy_key(manifest: dict[str, Any]) -> str:
    """The model's key of a policy manifest: ``namespace/name``, ``anp:<name>`` or ``banp:<name>``."""
    meta = manifest["metadata"]
    prefix = {"AdminNetworkPolicy": "anp:", "BaselineAdminNetworkPolicy": "banp:"}.get(manifest["kind"])
    return f"{prefix}{meta['name']}" if prefix else f"{meta['namespace']}/{meta['name']}"


def split_policies(models: Iterable[Any]) -> dict[str, Any]:
    """Policy models as ``Snapshot`` keyword arguments: policies, admin_policies, baseline."""
    from pycni.policy.admin_model import AdminNetworkPolicy, BaselineAdminNetworkPolicy

    models = list(models)
    baselines = [m for m in models if isinstance(m, BaselineAdminNetworkPolicy)]
    return {
        "policies": tuple(m for m in models if isinstance(m, NetworkPolicy)),
        "admin_policies": tuple(m for m in models if isinstance(m, AdminNetworkPolicy)),
        "baseline": baselines[-1] if baselines else None,
    }


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML has it: 10x faster


def _read(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=_LOADER)  # a safe loader either way


def load_cluster() -> Cluster:
    raw = _read(MODEL_FILE)
    pods = {
        key: ModelPod(key, spec["node"], spec["ip"], dict(spec["labels"])) for key, spec in raw["pods"].items()
    }
    return Cluster(
        nodes={name: tuple(ips) for name, ips in raw["nodes"].items()},
        namespaces={name: dict(labels) for name, labels in raw["namespaces"].items()},
        pods=pods,
        ports=tuple(raw["ports"]),
        protocols=tuple(raw["protocols"]),
    )


def parse_matrix(text: str, pods: list[str]) -> dict[Pair, bool]:
    """Upstream's printed truth table: a header of destinations, one row per source."""
    rows = [line.split() for line in text.strip().splitlines()]
    header, body = rows[0], rows[1:]
    if header != ["-", *pods]:
        raise ValueError(f"matrix header {header} is not '-' followed by {pods}")
    if [row[0] for row in body] != pods:
        raise ValueError(f"matrix rows {[row[0] for row in body]} are not {pods}")
    table: dict[Pair, bool] = {}
    for row in body:
        if len(row) != len(pods) + 1 or any(mark not in ".X" for mark in row[1:]):
            raise ValueError(f"matrix row {row} needs one '.' or 'X' per pod")
        for dst, mark in zip(pods, row[1:], strict=True):
            table[(row[0], dst)] = mark == "."
    return table


def format_matrix(table: dict[Pair, bool], pods: list[str]) -> str:
    """The layout the data uses, so a failing comparison prints two comparable tables."""
    width = max(len(pod) for pod in pods) + 2
    lines = ["-".ljust(width) + "".join(pod.ljust(width) for pod in pods).rstrip()]
    for src in pods:
        marks = "".join(("." if table[(src, dst)] else "X").ljust(width) for dst in pods)
        lines.append((src.ljust(width) + marks).rstrip())
    return "\n".join(lines)


def _step(raw: dict[str, Any], cluster: Cluster) -> Step:
    probes = []
    for probe in raw["probes"]:
        expected = parse_matrix(probe["reachability"], cluster.pod_keys)
        for port in probe["ports"]:
            for protocol in probe["protocols"]:
                probes.append(Probe(port, protocol, expected, probe["reachability"]))
    labels = raw.get("labels") or {}
    return Step(
        apply=tuple(raw.get("apply") or ()),
        delete=tuple(raw.get("delete") or ()),
        namespace_labels={k: dict(v) for k, v in (labels.get("namespaces") or {}).items()},
        pod_labels={k: dict(v) for k, v in (labels.get("pods") or {}).items()},
        probes=tuple(probes),
    )


def load_case(path: Path, cluster: Cluster | None = None) -> Case:
    cluster = cluster or load_cluster()
    raw = _read(path)
    if raw["name"] != path.stem:
        raise ValueError(f"{path.name}: name {raw['name']!r} is not the file's stem")
    steps = tuple(_step(step, cluster) for step in raw["steps"])
    return Case(raw["name"], path, raw["about"], raw.get("upstream"), steps)


def case_paths() -> list[Path]:
    return sorted(path for path in DATA_DIR.glob("*.yaml") if not path.name.startswith("_"))


def load_cases() -> list[Case]:
    cluster = load_cluster()
    return [load_case(path, cluster) for path in case_paths()]


def replay(case: Case, cluster: Cluster) -> Iterator[tuple[int, Step, State]]:
    """Each step with the state in force after it (the same State object, updated in place)."""
    state = State(
        policies={},
        namespace_labels={name: dict(labels) for name, labels in cluster.namespaces.items()},
        pod_labels={key: dict(pod.labels) for key, pod in cluster.pods.items()},
    )
    for index, step in enumerate(case.steps):
        state.apply(step)
        yield index, step, state


def namespace_manifest(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": dict(labels)}}


def pod_manifest(cluster: Cluster, key: str, labels: dict[str, str]) -> dict[str, Any]:
    """The Pod object a runtime applies for a model pod: one container declaring every serve-* port."""
    pod = cluster.pods[key]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": pod.name, "namespace": pod.namespace, "labels": dict(labels)},
        "spec": {"containers": [{"name": "serve", "image": "agnhost", "ports": cluster.container_ports()}]},
    }


# --- the same state as pycni.policy model values -------------------------------------------------


def _selector(raw: dict[str, Any] | None) -> LabelSelector | None:
    if raw is None:
        return None
    reqs = tuple(
        Requirement(expr["key"], expr["operator"], tuple(expr.get("values") or ()))
        for expr in raw.get("matchExpressions") or ()
    )
    return LabelSelector(labels_of(raw.get("matchLabels")), reqs)


def _peer(raw: dict[str, Any]) -> PolicyPeer:
    block = raw.get("ipBlock")
    return PolicyPeer(
        pod_selector=_selector(raw.get("podSelector")),
        namespace_selector=_selector(raw.get("namespaceSelector")),
        ip_block=IPBlock(block["cidr"], tuple(block.get("except") or ())) if block else None,
    )


def _rule(raw: dict[str, Any], peers_key: str) -> PolicyRule:
    ports = tuple(
        PolicyPort(port.get("protocol", "TCP"), port.get("port"), port.get("endPort"))
        for port in raw.get("ports") or ()
    )
    return PolicyRule(ports, tuple(_peer(peer) for peer in raw.get(peers_key) or ()))


def policy_from_manifest(manifest: dict[str, Any]) -> NetworkPolicy:
    """A NetworkPolicy manifest as the model, defaulted as the API server does; no validation.

    Stands in for ``pycni.policy.validate.to_model`` where that is not available."""
    spec = manifest["spec"]
    types = spec.get("policyTypes") or ["Ingress", *(["Egress"] if spec.get("egress") else [])]
    selector = _selector(spec.get("podSelector") or {})
    assert selector is not None
    return NetworkPolicy(
        namespace=manifest["metadata"]["namespace"],
        name=manifest["metadata"]["name"],
        pod_selector=selector,
        policy_types=frozenset(types),
        ingress=tuple(_rule(rule, "from") for rule in spec.get("ingress") or ()),
        egress=tuple(_rule(rule, "to") for rule in spec.get("egress") or ()),
    )


def to_policy(manifest: dict[str, Any]) -> Any:
    """Through pycni's own validation, so the tables check it too: a NetworkPolicy or an admin tier policy."""
    from pycni.policy.validate import to_model

    return to_model(manifest)


def to_snapshot(cluster: Cluster, state: State) -> Snapshot:
    ports = tuple(
        ContainerPort(port["containerPort"], port["protocol"], port["name"]) for port in cluster.container_ports()
    )
    return Snapshot(
        namespaces=tuple(Namespace(name, labels_of(labels)) for name, labels in state.namespace_labels.items()),
        pods=tuple(
            Pod(pod.namespace, pod.name, labels_of(state.pod_labels[key]), ports, (pod.ip,), pod.node)
            for key, pod in cluster.pods.items()
        ),
        nodes=tuple(Node(name, ips) for name, ips in cluster.nodes.items()),
        **split_policies(to_policy(manifest) for manifest in state.policies.values()),
    )
