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
at the end, also when interrupted (SIGINT, SIGTERM). Needs root.
``--parallel N``: N workers, each attaching then detaching its own pods
(0.21 s a pod with 4 and ``PYCNI_EXECUTOR_SOCKET`` naming a running
``pycni executor``: 10,000 pods in ~35 minutes). ``--trace A,B``: the agent
is started with a sitecustomize hook (this file's ``_TRACE_HOOK``, not in
pycni) that starts tracemalloc on SIGUSR2 and snapshots on the next ones;
snapshots after A and B pods are diffed at the end (by line, by traceback,
and live objects by type).

Run from the repository: ``.venv/bin/python benchmarks/memory_agent.py
[--endpoints 10000] [--lab-pods 10000 --every 500 --parallel 4] [--trace 300,1500]`` (starts its own etcd from
Debian's etcd-server on loopback and removes it at the end). Not part of
the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
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


# Loaded by the lab's agent (and only it) through PYTHONPATH when tracing: on SIGUSR2 the first time it
# starts tracemalloc, each time after it writes a snapshot and live objects by type. Not in pycni's code.
_TRACE_HOOK = """
import os, sys
if os.environ.get("PYCNI_MEMTRACE_DIR") and sys.orig_argv[1:4] == ["-m", "pycni", "agent"]:
    import collections, gc, json, pickle, signal, tracemalloc
    _out = os.environ["PYCNI_MEMTRACE_DIR"]
    def _dump(signum, frame):
        if not tracemalloc.is_tracing():
            tracemalloc.start(12)
            n = 0
        else:
            n = len([f for f in os.listdir(_out) if f.endswith(".types.json")]) + 1
            gc.collect()
            with open(os.path.join(_out, f"{n}.snap.tmp"), "wb") as f:
                pickle.dump(tracemalloc.take_snapshot(), f)
            os.replace(os.path.join(_out, f"{n}.snap.tmp"), os.path.join(_out, f"{n}.snap"))
            counts = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
            with open(os.path.join(_out, f"{n}.types.tmp"), "w") as f:
                json.dump(counts, f)
            os.replace(os.path.join(_out, f"{n}.types.tmp"), os.path.join(_out, f"{n}.types.json"))
        with open(os.path.join(_out, f"ack{n}"), "w"):
            pass
    signal.signal(signal.SIGUSR2, _dump)
"""


def _process_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class _Tracer:
    """Asks the agent (started with ``_TRACE_HOOK``) for tracemalloc snapshots and diffs them."""

    def __init__(self, pid: int, out: str) -> None:
        self.pid, self.out, self.taken = pid, out, 0

    def signal(self) -> None:
        os.kill(self.pid, signal.SIGUSR2)
        ack = os.path.join(self.out, f"ack{self.taken}")
        deadline = time.monotonic() + 120
        while not os.path.exists(ack):
            if time.monotonic() > deadline:
                raise RuntimeError("the agent did not answer SIGUSR2: is the trace hook loaded?")
            time.sleep(0.1)
        self.taken += 1

    def report(self) -> None:
        import pickle
        import tracemalloc

        def load(n: int) -> tuple[tracemalloc.Snapshot, dict[str, int]]:
            with open(os.path.join(self.out, f"{n}.snap"), "rb") as f:
                snap = pickle.load(f)
            with open(os.path.join(self.out, f"{n}.types.json")) as f:
                return snap, json.load(f)

        first, first_types = load(1)
        last, last_types = load(self.taken - 1)
        stats = last.compare_to(first, "lineno")
        grown = sum(s.size_diff for s in stats)
        print(f"tracemalloc, snapshot 1 -> {self.taken - 1}: {grown / 1024:+.1f} KiB traced "
              f"({sum(s.size for s in stats) / 1024:.0f} KiB in all); biggest changes by line:")
        for s in sorted(stats, key=lambda s: -abs(s.size_diff))[:12]:
            print(f"  {s.size_diff / 1024:+9.1f} KiB {s.count_diff:+7d} blocks  {s.traceback[0]}")
        by_file = last.compare_to(first, "traceback")
        for s in sorted(by_file, key=lambda s: -s.size_diff)[:3]:
            print(f"  {s.size_diff / 1024:+9.1f} KiB allocated at:")
            for line in s.traceback.format()[-10:]:
                print("     " + line)
        diff = {t: last_types.get(t, 0) - first_types.get(t, 0) for t in set(first_types) | set(last_types)}
        top = sorted(diff.items(), key=lambda kv: -abs(kv[1]))[:10]
        print("live objects by type, change: " + ", ".join(f"{t} {d:+d}" for t, d in top))


def lab_pods(pods: int, every: int, parallel: int, trace: list[int]) -> None:
    """A whole agent's memory while its node attaches and detaches ``pods`` pods, ``parallel`` at a time."""
    from pycni.cluster.lab import Lab

    root = tempfile.mkdtemp(prefix="pycni-bench-agent-")
    trace_dir = tempfile.mkdtemp(prefix="pycni-bench-trace-") if trace else None
    if trace_dir:
        with open(os.path.join(trace_dir, "sitecustomize.py"), "w") as f:
            f.write(_TRACE_HOOK)
        os.environ["PYCNI_MEMTRACE_DIR"] = trace_dir
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (trace_dir, os.environ.get("PYTHONPATH")) if p)
    lab = Lab.up(nodes=1, backend="host-gw", root=root)
    try:
        node = next(iter(lab.state.nodes.values()))
        assert node.agent_pid is not None
        agent_pid: int = node.agent_pid
        tracer = _Tracer(agent_pid, trace_dir) if trace_dir else None
        if tracer:
            tracer.signal()  # tracemalloc starts; snapshot 1 is at the first traced count
        started = time.monotonic()
        done, lock, failed = 0, threading.Lock(), threading.Event()
        print(f"agent of a one-node host-gw lab, {parallel} pod(s) in flight: pods, resident MB, s per pod",
              flush=True)
        print(f"{0:>7}{_process_rss_mb(agent_pid):>9.1f}", flush=True)

        def worker(first: int) -> None:
            nonlocal done
            try:
                for i in range(first, pods + 1, parallel):
                    if failed.is_set():
                        return
                    name = f"m{i}"
                    pod = lab.add_pod(node.name, name)
                    lab.del_pod(name)
                    with contextlib.suppress(ValueError):
                        lab.state.namespaces.remove(pod.netns)  # gone: keeps the state file small
                    with lock:
                        done += 1
                        if done % every == 0 or done == pods:
                            per_pod = (time.monotonic() - started) / done
                            print(f"{done:>7}{_process_rss_mb(agent_pid):>9.1f}{per_pod:>8.3f}", flush=True)
                        if tracer and done in trace:
                            tracer.signal()
            except BaseException:
                failed.set()
                raise

        threads = [threading.Thread(target=worker, args=(w + 1,), name=f"pods-{w}") for w in range(parallel)]
        for t in threads:
            t.start()
        try:
            for t in threads:
                t.join()
        finally:  # interrupted too: the workers finish the pod in hand, then the lab goes down
            failed.set()
            for t in threads:
                t.join()
        if any(t.is_alive() for t in threads) or done < pods:
            raise RuntimeError("a worker failed (its traceback is above)")
        print(f"wall time {time.monotonic() - started:.0f} s", flush=True)
        if tracer:
            tracer.report()
    finally:
        lab.down()
        os.rmdir(root)  # empty once the lab is down; an error here shows what it left behind
        if trace_dir:
            shutil.rmtree(trace_dir)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--endpoints", type=int, default=10000, help="endpoint records in the store (default 10000)")
    parser.add_argument("--lab-pods", type=int, default=0, help="measure a whole agent in a lab through N pods")
    parser.add_argument("--every", type=int, default=50, help="with --lab-pods: a sample every N pods (default 50)")
    parser.add_argument("--parallel", type=int, default=1,
                        help="with --lab-pods: workers, each attaching and detaching its own pods (default 1)")
    parser.add_argument("--trace", default="",
                        help="with --lab-pods: pod counts (e.g. 500,1500) at which the agent's allocations are "
                             "snapshotted with tracemalloc and diffed at the end")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: run the agent's part against this etcd
    args = parser.parse_args()
    if args.lab_pods:
        signal.signal(signal.SIGTERM, _interrupt)  # a killed run still takes its lab down
        lab_pods(args.lab_pods, args.every, args.parallel,
                 [int(n) for n in args.trace.split(",") if n])
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
