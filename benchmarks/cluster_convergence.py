"""How fast a new node's lease reaches every other node, for 10 and 50 simulated nodes.

Each simulated node is what the agent runs for leases, minus the kernel:
its own etcd client (``EtcdKV``), a ``SubnetManager`` holding its lease
(renewed every TTL/3) and a watcher thread (``list_leases`` then
``watch_leases``, i.e. the pure ``LeaseWatcher`` over an etcd watch).
Per round a newcomer acquires a subnet; convergence is the time from the
start of its ``acquire`` until the last node's watcher has reported it
``added``. Then the newcomer is removed (``release``, what ``pycni node
remove`` does) and the time until every watcher reported it ``removed`` is
measured the same way.

All nodes are threads of this one process, so the figures include Python's
thread scheduling (one interpreter lock for N watchers); on a real cluster
each node has its own process and CPU, so these are upper bounds.

Run from the repository: ``.venv/bin/python benchmarks/cluster_convergence.py``
(starts its own etcd from Debian's etcd-server on loopback, removes it at the
end; ``--etcd URL`` uses a running one). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pycni.cluster.config import ClusterConfig
from pycni.cluster.etcd import EtcdKV
from pycni.cluster.lease import Lease
from pycni.cluster.subnets import SubnetManager
from pycni.cluster.watch_loop import watch_leases
from tests.cluster_etcd.etcd_server import EtcdServer

TTL = 30


@dataclass
class SimNode:
    name: str
    endpoint: str
    prefix: str
    seen: dict[tuple[str, str], float] = field(default_factory=dict)  # (type, node) -> perf_counter
    cond: threading.Condition = field(default_factory=threading.Condition)

    def start(self, stop: threading.Event, index: int) -> None:
        self.kv = EtcdKV(self.endpoint)
        self.sm = SubnetManager(self.kv, self.prefix, ttl=TTL)
        self.lease: Lease = self.sm.acquire(self.name, IPv4Address(f"10.99.{index // 250}.{index % 250 + 1}"),
                                            {"VtepMAC": f"02:00:00:00:{index // 256:02x}:{index % 256:02x}"})
        threading.Thread(target=self._keep, args=(stop,), daemon=True, name=f"keep-{self.name}").start()
        threading.Thread(target=self._watch, args=(stop,), daemon=True, name=f"watch-{self.name}").start()

    def _keep(self, stop: threading.Event) -> None:
        while not stop.wait(TTL / 3):
            self.lease = self.sm.renew(self.lease)

    def _watch(self, stop: threading.Event) -> None:
        leases, _ = self.sm.list_leases()
        for event in watch_leases(self.sm, stop, known=leases):
            now = time.perf_counter()
            with self.cond:
                self.seen[(event.type, event.lease.node)] = now
                self.cond.notify_all()

    def wait_for(self, key: tuple[str, str], timeout: float) -> float:
        with self.cond:
            if not self.cond.wait_for(lambda: key in self.seen, timeout):
                raise TimeoutError(f"{self.name} never saw {key}")
            return self.seen[key]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(endpoint: str, n: int, rounds: int) -> dict[str, list[float]]:
    prefix = f"/bench-{uuid.uuid4().hex[:8]}"
    admin_kv = EtcdKV(endpoint)
    admin = SubnetManager(admin_kv, prefix, ttl=TTL)
    admin.init_config(ClusterConfig(network=IPv4Network("10.244.0.0/16")))
    stop = threading.Event()
    nodes = [SimNode(f"node{i:03d}", endpoint, prefix) for i in range(n)]
    for i, node in enumerate(nodes):
        node.start(stop, i)
    # warm up: every watcher is following (its watch stream is open) once it reports a probe
    probe_kv = EtcdKV(endpoint)
    probe = SubnetManager(probe_kv, prefix, ttl=TTL)
    probe.acquire("probe", IPv4Address("10.98.0.1"), {})
    for node in nodes:
        node.wait_for(("added", "probe"), 60)
    probe.release("probe")
    for node in nodes:
        node.wait_for(("removed", "probe"), 60)

    results: dict[str, list[float]] = {"acquire": [], "added": [], "added_median": [], "removed": []}
    newcomer_kv = EtcdKV(endpoint)
    newcomer = SubnetManager(newcomer_kv, prefix, ttl=TTL)
    for r in range(rounds):
        name = f"new{r}"
        started = time.perf_counter()
        newcomer.acquire(name, IPv4Address(f"10.97.0.{r + 1}"), {"VtepMAC": "02:00:00:00:ff:ff"})
        results["acquire"].append(time.perf_counter() - started)
        arrivals = [node.wait_for(("added", name), 30) - started for node in nodes]
        results["added"].append(max(arrivals))
        results["added_median"].append(statistics.median(arrivals))
        started = time.perf_counter()
        newcomer.release(name)
        results["removed"].append(max(node.wait_for(("removed", name), 30) - started for node in nodes))
        time.sleep(1.5)  # the watchers' expiry bookkeeping (0.1-1 s after a removal) is done before the next
    stop.set()
    for node in nodes:
        node.kv.close()
    for kv in (admin_kv, probe_kv, newcomer_kv):
        kv.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--nodes", default="10,50", help="simulated node counts, comma-separated (default 10,50)")
    parser.add_argument("--rounds", type=int, default=10, help="newcomers per node count (default 10)")
    parser.add_argument("--etcd", help="use this etcd client URL instead of starting one")
    args = parser.parse_args()
    counts = [int(x) for x in args.nodes.split(",")]

    server = None
    with tempfile.TemporaryDirectory(prefix="pycni-bench-etcd-") as tmp:
        if args.etcd:
            endpoint = args.etcd
        else:
            server = EtcdServer(Path(tmp) / "data", progress_notify="10m").start()
            endpoint = server.endpoint
        try:
            table = {n: run(endpoint, n, args.rounds) for n in counts}
        finally:
            if server is not None:
                server.stop()

    def ms(values: list[float], q: float | None = None) -> str:
        value = statistics.median(values) if q is None else percentile(values, q)
        return f"{value * 1000:.1f}"

    print(f"lease convergence over {args.rounds} newcomers per size (ms; 'all' = until the last node saw it)")
    header = ("nodes", "acquire p50", "added p50 node", "added all p50", "added all max", "removed all p50",
              "removed all max")
    rows = [(str(n), ms(r["acquire"]), ms(r["added_median"]), ms(r["added"]), ms(r["added"], 1.0),
             ms(r["removed"]), ms(r["removed"], 1.0)) for n, r in table.items()]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.rjust(widths[i]) for i, cell in enumerate(row)))
    if len(counts) >= 2:
        small, large = counts[0], counts[-1]
        grow = statistics.median(table[large]["added"]) / statistics.median(table[small]["added"])
        print(f"{large} vs {small} nodes: {large / small:.0f}x the nodes, {grow:.2f}x the time until all saw a "
              "newcomer")
    return 0


if __name__ == "__main__":
    sys.exit(main())
