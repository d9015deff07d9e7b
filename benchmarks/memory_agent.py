"""The node agent's memory from its lease code, in a cluster whose etcd holds many pods' records.

An agent without NetworkPolicy keeps no state per pod: it follows the
leases (``subnets/``) and programs routes. What pods can still cost it is
what it reads from the store they share: ``pycni/endpoints/`` (one record
per pod interface, written with NetworkPolicy on any node) and ``k8s/``.
This runs what the agent runs against the store, in a fresh process per
case, against a private etcd holding 1,000 nodes' leases and histories
plus ``--endpoints`` endpoint records: three ``acquire`` s (a start, a
restart, a lost lease), a ``list_leases`` and 200 renewals. It prints each
process's resident memory before and after, and its peak (``ru_maxrss``).

``--lab-pods N`` measures a whole agent instead: a one-node host-gw lab
(``pycni lab``, no policy) whose node attaches and detaches N pods one
after the other (``Lab.add_pod`` / ``del_pod``, ~0.75 s a pod here), with
the agent's resident memory every ``--every`` pods; the lab is torn down
at the end. Needs root.

Run from the repository: ``.venv/bin/python benchmarks/memory_agent.py
[--endpoints 10000] [--lab-pods 300 --every 50]`` (starts its own etcd from
Debian's etcd-server on loopback and removes it at the end). Not part of
the test suite.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pycni.cluster.config import ClusterConfig
from pycni.cluster.etcd import EtcdKV
from pycni.cluster.kv import Put
from pycni.cluster.lease import history_value, lease_value
from pycni.cluster.subnets import SubnetManager
from tests.cluster_etcd.etcd_server import EtcdServer

NODES = 1000
PREFIX = "/membench"


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def fill(endpoint: str, endpoints: int) -> None:
    """Without ``endpoints``: 1,000 nodes' leases and histories; with: that many endpoint records besides."""
    kv = EtcdKV(endpoint)
    manager = SubnetManager(kv, PREFIX, ttl=3600)
    manager.init_config(ClusterConfig(network=IPv4Network("10.240.0.0/12")))
    lease = kv.grant_lease(3600)
    puts = []
    for i in range(0 if endpoints else NODES):
        name = f"{IPv4Network((int(IPv4Address('10.240.0.0')) + i * 256, 24)).network_address}-24"
        public = IPv4Address(f"10.99.{i // 250}.{i % 250 + 1}")
        puts.append(Put(f"{PREFIX}/subnets/{name}",
                        lease_value(f"node{i:04d}", public, "vxlan", {"VtepMAC": "02:00:00:00:00:01"}), lease))
        puts.append(Put(f"{PREFIX}/history/{name}",
                        history_value(f"node{i:04d}", str(public), time.time(), None, released=False)))
    for i in range(endpoints):
        record = {"containerID": f"{i:064x}", "ifname": "eth0", "ips": [f"10.240.{i // 250 % 256}.{i % 250 + 2}"],
                  "labels": {"app": "web", "tier": "frontend", "pod-template-hash": "5d8f7c9b6"},
                  "namespace": "default", "node": f"node{i % NODES:04d}", "pod": f"web-{i}"}
        puts.append(Put(f"{PREFIX}/endpoints/node{i % NODES:04d}/{i:064x}/eth0", json.dumps(record).encode()))
    for start in range(0, len(puts), 100):
        kv.txn([], puts[start:start + 100])
    kv.close()


def child(endpoint: str) -> dict[str, float]:
    """What the agent's lease code does, in this process; its memory around it."""
    kv = EtcdKV(endpoint)
    manager = SubnetManager(kv, PREFIX, ttl=3600)
    manager.load_config()
    gc.collect()
    before = _rss_mb()
    lease = None
    for _ in range(3):  # a start, a restart within the TTL, and once more
        lease = manager.acquire("memnode", IPv4Address("10.97.0.1"), {"VtepMAC": "02:00:00:00:ff:ff"})
    manager.list_leases()
    for _ in range(200):
        assert lease is not None
        lease = manager.renew(lease)
    gc.collect()
    after = _rss_mb()
    manager.release("memnode")
    kv.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"before_mb": before, "after_mb": after, "peak_mb": peak}


def _process_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def lab_pods(pods: int, every: int) -> None:
    """A whole agent's memory while its node attaches and detaches ``pods`` pods."""
    from pycni.cluster.lab import Lab

    root = tempfile.mkdtemp(prefix="pycni-bench-agent-")
    lab = Lab.up(nodes=1, backend="host-gw", root=root)
    try:
        node = next(iter(lab.state.nodes.values()))
        assert node.agent_pid is not None
        started = time.monotonic()
        print("agent of a one-node host-gw lab: pods, resident MB, s per pod", flush=True)
        print(f"{0:>7}{_process_rss_mb(node.agent_pid):>9.1f}", flush=True)
        for i in range(1, pods + 1):
            lab.add_pod(node.name, f"m{i}")
            lab.del_pod(f"m{i}")
            if i % every == 0 or i == pods:
                per_pod = (time.monotonic() - started) / i
                print(f"{i:>7}{_process_rss_mb(node.agent_pid):>9.1f}{per_pod:>8.2f}", flush=True)
    finally:
        lab.down()
        os.rmdir(root)  # empty once the lab is down; an error here shows what it left behind


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--endpoints", type=int, default=10000, help="endpoint records in the store (default 10000)")
    parser.add_argument("--lab-pods", type=int, default=0, help="measure a whole agent in a lab through N pods")
    parser.add_argument("--every", type=int, default=50, help="with --lab-pods: a sample every N pods (default 50)")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: run the agent's part against this etcd
    args = parser.parse_args()
    if args.lab_pods:
        lab_pods(args.lab_pods, args.every)
        return 0
    if args.child:
        print(json.dumps(child(args.child)))
        return 0
    print(f"agent lease code, {NODES} nodes' leases in etcd (MB: resident before / after, peak of the process)")
    with tempfile.TemporaryDirectory(prefix="pycni-bench-etcd-") as tmp:
        server = EtcdServer(Path(tmp) / "data", progress_notify="10m").start()
        try:
            for endpoints in (0, args.endpoints):
                fill(server.endpoint, endpoints)  # the records join the leases: same store, same run
                out = subprocess.run([sys.executable, __file__, "--child", server.endpoint], capture_output=True,
                                     text=True, check=True, timeout=600)
                r = json.loads(out.stdout)
                print(f"{endpoints:>6} endpoint records: {r['before_mb']:6.1f} / {r['after_mb']:6.1f}, "
                      f"peak {r['peak_mb']:6.1f}", flush=True)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
