"""The policy agent alone, in its own process, for benchmarks/policy.py to measure.

``policy_agent.py ENDPOINT PREFIX NODE NETNS_PATH SOCKET`` runs a PolicyAgent on
the etcd at ENDPOINT (on the host's loopback) and applies its table inside
NETNS_PATH from one thread that stays there, as a node's agent applies from
its own namespace; it serves the netpol plugin's requests on SOCKET. It prints one JSON
line when started (``{"event": "ready", "cold_seconds": ...}``) and one per
commit (``{"event": "sync", "time": <unix time>, "kind", "commands",
"seconds"}``), and answers a line ``rss`` on stdin with its resident memory.
EOF on stdin stops it.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pycni.cluster.etcd import EtcdKV
from pycni.cluster.kv import KeyValue
from pycni.net.firewall.nft import apply as nft_apply
from pycni.net.firewall.nft_dump import keep_sockets_here
from pycni.net.netns import run_in_netns
from pycni.policy.agent import PolicyAgent
from pycni.policy.enforcer import SyncStats
from pycni.policy.nftdiff import ElementChange
from pycni.policy.node_service import apply_elements
from pycni.policy.ruleset import Ruleset

_PRINT = threading.Lock()


def report(event: dict[str, object]) -> None:
    """One JSON line; the agent's threads report concurrently, and two lines must never interleave."""
    line = json.dumps(event) + "\n"
    with _PRINT:
        sys.stdout.write(line)
        sys.stdout.flush()


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class NetnsApplier:
    """Runs nft scripts and element batches from one thread that entered the namespace once."""

    def __init__(self, netns: str) -> None:
        self.requests: queue.Queue[tuple[Callable[[], None], queue.Queue[BaseException | None]]] = queue.Queue()
        threading.Thread(target=run_in_netns, args=(netns, self._serve), daemon=True).start()

    def _serve(self) -> None:
        keep_sockets_here()  # as an agent running in its node's namespace reuses its nfnetlink sockets
        while True:
            work, answer = self.requests.get()
            try:
                work()
                answer.put(None)
            except BaseException as exc:
                answer.put(exc)

    def _run(self, work: Callable[[], None]) -> None:
        answer: queue.Queue[BaseException | None] = queue.Queue()
        self.requests.put((work, answer))
        failure = answer.get()
        if failure is not None:
            raise failure

    def apply(self, script: str) -> None:
        self._run(lambda: nft_apply(script))

    def apply_elements(self, changes: list[ElementChange]) -> None:
        self._run(lambda: apply_elements(changes))


def main() -> None:
    endpoint, prefix, node, netns, socket_path = sys.argv[1:6]
    kv = EtcdKV(endpoint)
    applier = NetnsApplier(netns)
    agent = PolicyAgent(kv, node, applier.apply, prefix=prefix, socket_path=socket_path, resync_seconds=3600,
                        apply_elements=applier.apply_elements)
    enforce = agent.enforcer.enforce

    def reporting_enforce(desired: Ruleset) -> SyncStats:
        stats = enforce(desired)
        if stats.kind != "none":
            report({"event": "sync", "time": time.time(), "kind": stats.kind, "commands": stats.commands,
                    "seconds": stats.seconds})
        return stats

    agent.enforcer.enforce = reporting_enforce  # type: ignore[method-assign]
    on_event = agent._on_event

    def reporting_on_event(kind: str, kv: KeyValue) -> None:
        report({"event": "watch", "time": time.time()})
        on_event(kind, kv)

    agent._on_event = reporting_on_event  # type: ignore[method-assign]
    start = time.perf_counter()
    agent.start()
    report({"event": "ready", "cold_seconds": time.perf_counter() - start, "phases": agent.stats.start_seconds,
            "commands": agent.stats.last_sync.commands if agent.stats.last_sync else 0})
    for line in sys.stdin:
        if line.strip() == "rss":
            report({"event": "rss", "mb": rss_mb()})
    agent.stop()
    kv.close()


if __name__ == "__main__":
    main()
