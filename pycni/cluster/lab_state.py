"""What a lab is made of, on disk: names, addresses and PIDs (pure apart from reading and writing the file).

A lab ``<id>`` lives in ``<root>/<id>/`` with ``state.json`` recording every
namespace it created and every process it started, written *before* the
thing is made, so ``pycni lab down`` can remove everything even after a
crash half way through ``up``. Every network namespace of a lab is named
``<id>-<role>`` (``pl3f9a2c-n1``), so labs never collide and a sweep by
prefix finds leftovers.

Layout (addresses are per lab, inside its own namespaces, so two labs may
use the same ones)::

    <id>-ul    the underlay: bridge ul0 (UNDERLAY .1), etcd on it, router to the outside
    <id>-ext   "the outside world": eth0 OUTSIDE_IP, reached via the underlay router
    <id>-nK    node K: eth0 UNDERLAY .(10+K), an agent, bridge cni0 with its pods
    <id>-p-P   pod P: eth0 from the node's bridge plugin (pod NS/P: <id>-p-NS.P)

Faults injected with ``pycni lab break`` (``pycni.cluster.lab_faults``) are
recorded in ``faults``, with what their heal needs, before they are made; a
namespace a fault creates is recorded in ``namespaces`` too, so ``down``
removes it like any other.

A pod added with a Kubernetes namespace is known to the lab as ``NS/NAME``
(``x/a``); one added without is known by its name alone.

Finding a lab's etcd from outside (``pycni apply`` and friends, when neither
``--etcd-endpoints`` nor ``$PYCNI_ETCD_ENDPOINTS`` is given): ``lab_etcd``
returns the endpoint and the namespace it is reachable in, for the lab
``$PYCNI_LAB`` names or the only lab under ``$PYCNI_LAB_ROOT`` (default
DEFAULT_ROOT); None when no lab is up.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import asdict, dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network, IPv6Network
from typing import Any

__all__ = [
    "DEFAULT_NETWORK",
    "DEFAULT_ROOT",
    "OUTSIDE_IP",
    "UNDERLAY",
    "FaultState",
    "LabEtcd",
    "LabState",
    "NodeState",
    "PodState",
    "check_name",
    "lab_etcd",
    "node_ip",
]

DEFAULT_ROOT = "/run/pycni-lab"
DEFAULT_NETWORK = IPv4Network("10.244.0.0/16")
UNDERLAY = IPv4Network("192.168.77.0/24")
OUTSIDE_NET = IPv4Network("203.0.113.0/24")  # TEST-NET-3: never a real destination
OUTSIDE_IP = IPv4Address("203.0.113.10")
OUTSIDE_GW = IPv4Address("203.0.113.1")
ETCD_PORT = 2379
_SAVE_LOCK = threading.Lock()  # one writer of a lab's state.json per process at a time
UNDERLAY6 = IPv6Network("fd00:1ab::/64")  # a dual-stack or IPv6-only lab's underlay (lab_dualstack)
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?$")


def check_name(name: str, what: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"{what} name {name!r}: use 1-20 lower-case letters, digits and '-'")
    return name


def node_ip(index: int) -> IPv4Address:
    return UNDERLAY.network_address + 10 + index


@dataclass
class NodeState:
    name: str
    index: int
    netns: str
    ip: str
    agent_pid: int | None = None


@dataclass
class PodState:
    name: str  # the lab's key: NAME, or NS/NAME for a pod with a Kubernetes namespace
    node: str
    netns: str
    ip: str = ""
    namespace: str | None = None  # Kubernetes namespace (None: attached without K8S_* CNI_ARGS)
    ipv6: str = ""  # in a dual-stack lab (lab_dualstack)


@dataclass
class FaultState:
    node: str
    fault: str  # a name of pycni.cluster.lab_faults.FAULTS
    undo: dict[str, Any] = field(default_factory=dict)  # what healing needs (JSON values)
    stopped_agent: bool = False  # the fault stopped the node's agent; healing starts it again


@dataclass(frozen=True)
class LabEtcd:
    lab_id: str
    endpoint: str
    netns: str  # etcd listens only inside this network namespace (the lab's underlay)


@dataclass
class LabState:
    id: str
    root: str
    backend: str
    network: str = str(DEFAULT_NETWORK)
    etcd_pid: int | None = None
    namespaces: list[str] = field(default_factory=list)
    nodes: dict[str, NodeState] = field(default_factory=dict)
    pods: dict[str, PodState] = field(default_factory=dict)
    faults: list[FaultState] = field(default_factory=list)
    ipv6: bool = False  # dual stack: IPv6 underlay addresses and an IPv6 pod network (lab_dualstack)
    ipv6_only: bool = False  # (with ipv6) no IPv4 on nodes and pods; etcd is reached over IPv6

    @property
    def dir(self) -> str:
        return os.path.join(self.root, self.id)

    @property
    def path(self) -> str:
        return os.path.join(self.dir, "state.json")

    @property
    def underlay_ns(self) -> str:
        return f"{self.id}-ul"

    @property
    def outside_ns(self) -> str:
        return f"{self.id}-ext"

    @property
    def etcd_ip(self) -> IPv4Address:
        return UNDERLAY.network_address + 1

    @property
    def etcd_endpoint(self) -> str:
        if self.ipv6_only:
            return f"http://[{UNDERLAY6.network_address + 1}]:{ETCD_PORT}"
        return f"http://{self.etcd_ip}:{ETCD_PORT}"

    def node_dir(self, node: str) -> str:
        return os.path.join(self.dir, "nodes", node)

    def pod_netns(self, pod: str) -> str:
        return f"{self.id}-p-{pod.replace('/', '.')}"

    def next_node_index(self) -> int:
        return max((n.index for n in self.nodes.values()), default=0) + 1

    def netns_of(self, name: str) -> str:
        """The namespace behind a pod, node, ``outside`` or ``underlay`` name."""
        if name in self.pods:
            return self.pods[name].netns
        if name in self.nodes:
            return self.nodes[name].netns
        if name in ("outside", "ext"):
            return self.outside_ns
        if name in ("underlay", "ul", "etcd"):
            return self.underlay_ns
        raise KeyError(f"lab {self.id} has no pod or node named {name!r}")

    def save(self) -> None:
        """Write state.json whole (a temporary file per writer, then a rename): two threads, or two
        ``pycni lab`` commands, saving at once leave one complete file, never a mixed one."""
        os.makedirs(self.dir, exist_ok=True)
        tmp = f"{self.path}.{os.getpid()}.{threading.get_ident()}.tmp"
        # copies taken first (one C call each, atomic under the GIL): add_pod in another thread may be
        # changing them while asdict walks
        copy = replace(self, namespaces=list(self.namespaces), nodes=dict(self.nodes), pods=dict(self.pods),
                       faults=list(self.faults))
        with _SAVE_LOCK:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(asdict(copy), f, indent=2)
            os.replace(tmp, self.path)

    @classmethod
    def load(cls, root: str, lab_id: str) -> LabState:
        with open(os.path.join(root, lab_id, "state.json"), encoding="utf-8") as f:
            data: dict[str, Any] = json.load(f)
        nodes = {k: NodeState(**v) for k, v in data.pop("nodes", {}).items()}
        pods = {k: PodState(**v) for k, v in data.pop("pods", {}).items()}
        faults = [FaultState(**v) for v in data.pop("faults", [])]
        return cls(**data, nodes=nodes, pods=pods, faults=faults)

    @staticmethod
    def list_ids(root: str) -> list[str]:
        try:
            entries = sorted(os.listdir(root))
        except FileNotFoundError:
            return []
        return [e for e in entries if os.path.exists(os.path.join(root, e, "state.json"))]


def lab_etcd(root: str, lab_id: str | None = None) -> LabEtcd | None:
    """The etcd of lab ``lab_id``, or of the only lab under ``root``; None when none is up.

    ValueError when ``lab_id`` names no lab, or several labs are up and none is chosen."""
    ids = LabState.list_ids(root)
    if lab_id is None:
        if len(ids) > 1:
            raise ValueError(f"several labs are up ({', '.join(ids)}): set $PYCNI_LAB or --etcd-endpoints")
        if not ids:
            return None
        lab_id = ids[0]
    elif lab_id not in ids:
        raise ValueError(f"no lab '{lab_id}' under {root}")
    state = LabState.load(root, lab_id)
    return LabEtcd(lab_id, state.etcd_endpoint, f"/run/netns/{state.underlay_ns}")
