"""The upstream NetworkPolicy e2e model on a real lab: 3 nodes, namespaces x, y, z, pods a, b, c in each.

Pod ``a`` of every namespace runs on n1, ``b`` on n2, ``c`` on n3 (the model's
node-1..3), so every case has pairs on one node (bridged) and across nodes
(vxlan). Each pod serves TCP and UDP on 80 and 81 (tests/policy/serve.py) and
is attached as kubelet's runtimes attach: Namespace and Pod objects in etcd,
``K8S_POD_NAMESPACE`` / ``K8S_POD_NAME`` in CNI_ARGS.

``NetpolLab`` drives the objects through ``pycni.policy.store`` in the lab's
etcd and compares packets with the evaluator (``pycni.policy.evaluate``) on a
snapshot of the same objects, with the lab's real addresses. The cases' ipBlocks
name the model's addresses; ``remap`` turns them into the lab's (a model pod's
/32 into that pod's, a model node's /24 into that node's subnet).

Probes run in threads that entered the source pod's namespace: a TCP connect,
or a UDP datagram that must come back echoed, with a short timeout. A probe
that disagrees with the evaluator is repeated until ``settle`` seconds passed
(policy reaches every node within a second; a loaded machine may lose a probe).
"""

from __future__ import annotations

import contextlib
import copy
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any, TypeVar

from pycni.cluster.lab import PREFIX, Lab
from pycni.cluster.lab_state import LabState
from pycni.net.netns import open_netns, run_in_netns
from pycni.policy.evaluate import Node, Snapshot
from pycni.policy.model import ContainerPort, Namespace, Pod, labels_of
from pycni.policy.reachability import reachability
from pycni.policy.store import ADMIN_NETWORK_POLICY, BASELINE_ADMIN_NETWORK_POLICY, NETWORK_POLICY, ObjectStore
from pycni.policy.validate import to_model, validate_all
from tests.support.netpol_cases import Cluster, State, namespace_manifest, pod_manifest, split_policies

T = TypeVar("T")
SERVE = Path(__file__).resolve().parent.parent / "policy" / "serve.py"
PORTS = (80, 81)
PROTOCOLS = ("TCP", "UDP")  # this kernel has no SCTP: SCTP policies are compiled and unit-tested elsewhere
NODE_OF = {"a": "n1", "b": "n2", "c": "n3"}
MODEL_NODE = {"node-1": "n1", "node-2": "n2", "node-3": "n3"}
Pair = tuple[str, str]
Kind = tuple[int, str]


def parallel(calls: list[Callable[[], T]], workers: int = 32) -> list[T]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda call: call(), calls))


def connects(dst_ip: str, port: int, protocol: str, timeout: float) -> bool:
    """In the calling thread's namespace: does a TCP connection, or a UDP echo, come through?"""
    kind = socket.SOCK_STREAM if protocol == "TCP" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.settimeout(timeout)
        try:
            if protocol == "TCP":
                sock.connect((dst_ip, port))
                return True
            token = os.urandom(8)
            sock.sendto(token, (dst_ip, port))
            return sock.recv(64) == token
        except OSError:
            return False


@dataclass
class NetpolLab:
    lab: Lab
    cluster: Cluster
    _servers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _fds: dict[str, int] = field(default_factory=dict)

    # -- building ------------------------------------------------------------------------

    def build(self) -> NetpolLab:
        self.store_objects([namespace_manifest(name, labels) for name, labels in self.cluster.namespaces.items()]
                           + [pod_manifest(self.cluster, key, pod.labels) for key, pod in self.cluster.pods.items()])
        for key in self.cluster.pods:
            namespace, name = key.split("/")
            self.lab.add_pod(NODE_OF[name], name, namespace=namespace)
            self.serve(key)
        for key in self.cluster.pods:
            self.wait_serving(key)
        return self

    def serve(self, key: str) -> None:
        pod = self.lab.state.pods[key]
        self._servers[key] = subprocess.Popen(
            ["ip", "netns", "exec", pod.netns, sys.executable, str(SERVE), pod.ip, *map(str, PORTS)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop_serving(self, key: str) -> None:
        server = self._servers.pop(key, None)
        if server is not None:
            server.kill()
            server.wait()
        fd = self._fds.pop(key, None)
        if fd is not None:
            os.close(fd)

    def reload(self) -> None:
        """Read the lab's state file again, after a ``pycni lab`` command (another process) changed it."""
        self.lab.state = LabState.load(self.lab.state.root, self.lab.state.id)

    def wait_serving(self, key: str, timeout: float = 15.0) -> None:
        """Until the pod answers TCP and UDP on its own address from inside (never subject to policy)."""
        ip = self.lab.state.pods[key].ip
        deadline = time.monotonic() + timeout
        while not all(self.in_pod(key, connects, ip, port, proto, 0.2) for port in PORTS for proto in PROTOCOLS):
            assert time.monotonic() < deadline, f"the server in {key} did not start"
            time.sleep(0.05)

    def close(self) -> None:
        for server in self._servers.values():
            server.kill()
            server.wait()
        for fd in self._fds.values():
            os.close(fd)
        self._servers.clear()
        self._fds.clear()

    def in_pod(self, key: str, fn: Callable[..., T], *args: Any) -> T:
        fd = self._fds.get(key)
        if fd is None:
            fd = self._fds[key] = open_netns(f"/run/netns/{self.lab.state.pods[key].netns}")
        return run_in_netns(fd, fn, *args)

    # -- objects ---------------------------------------------------------------------------

    def with_store(self, fn: Callable[[ObjectStore], T]) -> T:
        return self.lab.with_kv(lambda kv: fn(ObjectStore(kv, PREFIX)))

    def store_objects(self, documents: list[dict[str, Any]]) -> None:
        models = validate_all(documents)
        self.with_store(lambda store: store.apply(models))

    def delete_policies(self, keys: Iterable[str]) -> None:
        def delete(store: ObjectStore) -> None:
            for key in keys:
                if key.startswith("anp:"):
                    store.delete(ADMIN_NETWORK_POLICY, "", key[4:])
                elif key.startswith("banp:"):
                    store.delete(BASELINE_ADMIN_NETWORK_POLICY, "", key[5:])
                else:
                    namespace, name = key.split("/")
                    store.delete(NETWORK_POLICY, namespace, name)

        self.with_store(delete)

    def reset(self) -> None:
        """No policies, the model's labels."""
        def reset(store: ObjectStore) -> None:
            for kind in (NETWORK_POLICY, ADMIN_NETWORK_POLICY, BASELINE_ADMIN_NETWORK_POLICY):
                for obj in store.list(kind):
                    store.delete(kind, obj.ref.namespace, obj.ref.name)

        self.with_store(reset)
        self.store_objects([namespace_manifest(n, labels) for n, labels in self.cluster.namespaces.items()]
                           + [pod_manifest(self.cluster, key, pod.labels) for key, pod in self.cluster.pods.items()])

    # -- the model's addresses -> the lab's ------------------------------------------------

    def address_map(self) -> dict[str, str]:
        mapping = {f"{pod.ip}/32": f"{self.lab.state.pods[key].ip}/32" for key, pod in self.cluster.pods.items()}
        for model_node, ips in self.cluster.nodes.items():
            subnet = self.lab.node_subnet(MODEL_NODE[model_node])
            assert subnet is not None
            mapping[str(IPv4Network(f"{ips[1]}/24"))] = str(subnet)
        return mapping

    def remap(self, manifest: dict[str, Any]) -> dict[str, Any]:
        mapping = self.address_map()
        out = copy.deepcopy(manifest)
        for direction, peers_key in (("ingress", "from"), ("egress", "to")):
            for rule in out["spec"].get(direction) or ():
                for peer in rule.get(peers_key) or ():
                    if peer.get("networks"):  # an AdminNetworkPolicy's CIDR peer
                        peer["networks"] = [mapping.get(c, c) for c in peer["networks"]]
                    block = peer.get("ipBlock")
                    if block:
                        block["cidr"] = mapping.get(block["cidr"], block["cidr"])
                        block["except"] = [mapping.get(c, c) for c in block.get("except") or ()]
        return out

    # -- the evaluator's view of the lab ----------------------------------------------------

    def snapshot(self, state: State) -> Snapshot:
        ports = tuple(ContainerPort(p["containerPort"], p["protocol"], p["name"])
                      for p in self.cluster.container_ports())
        nodes = []
        for name, node in self.lab.state.nodes.items():
            subnet = self.lab.node_subnet(name)
            assert subnet is not None
            nodes.append(Node(name, (node.ip, str(subnet.network_address), str(subnet[1]))))
        pods = tuple(
            Pod(key.split("/")[0], key.split("/")[1], labels_of(state.pod_labels[key]), ports,
                (self.lab.state.pods[key].ip,), self.lab.state.pods[key].node)
            for key in self.cluster.pods
        )
        return Snapshot(
            namespaces=tuple(Namespace(n, labels_of(labels)) for n, labels in state.namespace_labels.items()),
            pods=pods,
            nodes=tuple(nodes),
            **split_policies(to_model(self.remap(m)) for m in state.policies.values()),
        )

    # -- packets ---------------------------------------------------------------------------

    def probe(self, src: str, dst: str, port: int, protocol: str, timeout: float = 0.3) -> bool:
        return self.in_pod(src, connects, self.lab.state.pods[dst].ip, port, protocol, timeout)

    def mismatches(self, expected: dict[Kind, dict[Pair, bool]], settle: float = 3.0) -> list[str]:
        """Probe every pair of every kind; what still disagrees with ``expected`` after ``settle`` seconds."""
        todo = [(kind, pair, want) for kind, table in expected.items() for pair, want in table.items()]
        deadline = time.monotonic() + settle
        while True:
            got = parallel([lambda k=k, p=p: self.probe(p[0], p[1], *k) for k, p, _ in todo])  # type: ignore[misc]
            todo = [(k, p, want) for (k, p, want), ok in zip(todo, got, strict=True) if ok != want]
            if not todo or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        return [f"{p[0]} -> {p[1]} {k[1]}/{k[0]}: packets {'pass' if not want else 'are dropped'}, "
                f"the evaluator says {'allow' if want else 'deny'}" for k, p, want in todo]

    def expected(self, state: State, kinds: Iterable[Kind]) -> dict[Kind, dict[Pair, bool]]:
        snapshot = self.snapshot(state)
        return {kind: {pair: ok for pair, ok in reachability(snapshot, kind[0], kind[1]).items()  # type: ignore[arg-type]
                       if pair[0] != pair[1]} for kind in kinds}


@contextlib.contextmanager
def netpol_lab(root: Path, cluster: Cluster) -> Any:
    lab = Lab.up(3, "vxlan", root=str(root))
    world = NetpolLab(lab, cluster)
    try:
        yield world.build()
    finally:
        world.close()
        lab.down()
