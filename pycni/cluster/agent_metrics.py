"""The agent's Prometheus metrics (text format 0.0.4), served like the executor's.

Series: ``pycni_agent_lease_renewals_total``, ``pycni_agent_lease_acquisitions_total``,
``pycni_agent_datastore_errors_total{component}``, ``pycni_agent_reconciles_total``,
``pycni_agent_kernel_changes_total{action}``, ``pycni_agent_reconcile_errors_total``,
``pycni_agent_peers``, ``pycni_agent_refused_peers``, ``pycni_agent_lease_valid``,
``pycni_agent_stranded_pods`` and ``pycni_agent_last_reconcile_timestamp_seconds``.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from http.server import ThreadingHTTPServer

_HELP = {
    "pycni_agent_lease_acquisitions_total": ("counter", "Subnet leases acquired (first, or again after losing one)."),
    "pycni_agent_lease_renewals_total": ("counter", "Successful lease renewals."),
    "pycni_agent_datastore_errors_total": ("counter", "Failed datastore calls, by component."),
    "pycni_agent_reconciles_total": ("counter", "Reconcile passes run."),
    "pycni_agent_reconcile_errors_total": ("counter", "Reconcile passes that failed."),
    "pycni_agent_kernel_changes_total": ("counter", "Kernel entries added or removed by reconciling."),
    "pycni_agent_peers": ("gauge", "Peer nodes known from the datastore."),
    "pycni_agent_refused_peers": ("gauge", "Peers the backend cannot serve (see the log)."),
    "pycni_agent_lease_valid": ("gauge", "1 while the node holds a subnet lease."),
    "pycni_agent_stranded_pods": ("gauge", "Pods addressed outside the node's subnet (it had to move; see the log)."),
    "pycni_agent_last_reconcile_timestamp_seconds": ("gauge", "Unix time of the last successful reconcile."),
}

Key = tuple[str, tuple[tuple[str, str], ...]]


class AgentMetrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[Key, float] = defaultdict(float)
        self._collectors: list[Callable[[], str]] = []  # more series rendered at scrape time (policy's)

    def add_collector(self, render: Callable[[], str]) -> None:
        """Append ``render()``'s text (whole exposition lines) to every scrape."""
        self._collectors.append(render)

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        with self._lock:
            self._values[(name, tuple(sorted(labels.items())))] += amount

    def set(self, name: str, value: float, **labels: str) -> None:
        with self._lock:
            self._values[(name, tuple(sorted(labels.items())))] = value

    def get(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._values.get((name, tuple(sorted(labels.items()))), 0.0)

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            values = dict(self._values)
        for name, (kind, text) in _HELP.items():
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            series = sorted((k, v) for k, v in values.items() if k[0] == name)
            if not series and kind == "gauge":
                series = [((name, ()), 0.0)]
            for (_, labels), value in series:
                label_text = "{" + ",".join(f'{k}="{v}"' for k, v in labels) + "}" if labels else ""
                lines.append(f"{name}{label_text} {value:.17g}")
        return "\n".join(lines) + "\n" + "".join(render() for render in self._collectors)


def serve(addr: str, metrics: AgentMetrics) -> ThreadingHTTPServer:
    """``GET /metrics`` on ``addr`` from a daemon thread (the executor's server; it only calls ``render``)."""
    from pycni.executor.metrics import serve_metrics

    return serve_metrics(addr, cast(Any, metrics))
