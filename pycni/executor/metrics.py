"""The executor's Prometheus metrics and the tiny HTTP server that exposes them.

Contract: ``Metrics`` is thread-safe and renders the text exposition
format (version 0.0.4) without any dependency; ``serve_metrics(addr,
metrics)`` answers ``GET /metrics`` on ``host:port`` from a daemon thread
and returns the server (``server_address`` holds the bound port, useful
with port 0).

Series:

- ``pycni_executor_requests_total{plugin,command}`` — calls run
- ``pycni_executor_request_duration_seconds{plugin,command}`` — histogram
- ``pycni_executor_errors_total{plugin,command,code}`` — failed calls by CNI code
- ``pycni_executor_refused_total{reason}`` — connections declined or dropped
- ``pycni_executor_timeouts_total{plugin,command}`` — calls abandoned at the deadline
- ``pycni_executor_in_flight`` / ``pycni_executor_abandoned_running`` — gauges
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from http.server import ThreadingHTTPServer

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

Labels = tuple[tuple[str, str], ...]


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[Labels, int] = defaultdict(int)
        self._errors: dict[Labels, int] = defaultdict(int)
        self._refused: dict[Labels, int] = defaultdict(int)
        self._timeouts: dict[Labels, int] = defaultdict(int)
        self._buckets: dict[Labels, list[int]] = {}
        self._sums: dict[Labels, float] = defaultdict(float)
        self.in_flight = 0
        self.abandoned_running = 0

    def observe(self, plugin: str, command: str, seconds: float, error_code: int | None) -> None:
        """One finished call (``error_code`` None when it succeeded)."""
        key = (("plugin", plugin), ("command", command))
        with self._lock:
            self._requests[key] += 1
            self._sums[key] += seconds
            counts = self._buckets.setdefault(key, [0] * (len(BUCKETS) + 1))
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    counts[i] += 1
            counts[-1] += 1  # +Inf
            if error_code is not None:
                self._errors[(*key, ("code", str(error_code)))] += 1

    def refused(self, reason: str) -> None:
        with self._lock:
            self._refused[(("reason", reason),)] += 1

    def timed_out(self, plugin: str, command: str) -> None:
        with self._lock:
            self._timeouts[(("plugin", plugin), ("command", command))] += 1

    def adjust(self, *, in_flight: int = 0, abandoned_running: int = 0) -> None:
        with self._lock:
            self.in_flight += in_flight
            self.abandoned_running += abandoned_running

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            _counter(lines, "pycni_executor_requests_total", "Plugin calls run by the executor.", self._requests)
            lines.append("# HELP pycni_executor_request_duration_seconds Time from taking a call to its outcome.")
            lines.append("# TYPE pycni_executor_request_duration_seconds histogram")
            for key, counts in sorted(self._buckets.items()):
                name = "pycni_executor_request_duration_seconds"
                for bound, count in zip((*(f"{b:g}" for b in BUCKETS), "+Inf"), counts, strict=True):
                    lines.append(f"{name}_bucket{_labels((*key, ('le', bound)))} {count}")
                lines.append(f"{name}_sum{_labels(key)} {self._sums[key]:.6f}")
                lines.append(f"{name}_count{_labels(key)} {counts[-1]}")
            _counter(lines, "pycni_executor_errors_total", "Failed plugin calls by CNI error code.", self._errors)
            _counter(lines, "pycni_executor_refused_total", "Connections declined or dropped, by reason.",
                     self._refused)
            _counter(lines, "pycni_executor_timeouts_total", "Calls answered with a timeout error.", self._timeouts)
            _gauge(lines, "pycni_executor_in_flight", "Calls being run now.", self.in_flight)
            _gauge(lines, "pycni_executor_abandoned_running", "Timed-out calls whose worker still runs.",
                   self.abandoned_running)
        return "\n".join(lines) + "\n"


def _counter(lines: list[str], name: str, text: str, series: dict[Labels, int]) -> None:
    lines.append(f"# HELP {name} {text}")
    lines.append(f"# TYPE {name} counter")
    lines.extend(f"{name}{_labels(key)} {value}" for key, value in sorted(series.items()))


def _gauge(lines: list[str], name: str, text: str, value: int) -> None:
    lines.extend((f"# HELP {name} {text}", f"# TYPE {name} gauge", f"{name} {value}"))


def _labels(pairs: Labels) -> str:
    if not pairs:
        return ""
    escaped = (v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"') for _, v in pairs)
    return "{" + ",".join(f'{k}="{v}"' for (k, _), v in zip(pairs, escaped, strict=True)) + "}"


def parse_addr(addr: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``:port`` (all addresses) -> (host, port); ValueError if malformed."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"metrics address {addr!r}: expected HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def serve_metrics(addr: str, metrics: Metrics) -> ThreadingHTTPServer:
    """Serve ``/metrics`` on ``addr`` from a daemon thread; return the server."""
    import socket
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            body = metrics.render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # scrapes are not events worth a log line

    host, port = parse_addr(addr)

    class Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        daemon_threads = True

    server = Server((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="pycni-metrics", daemon=True).start()
    return server
