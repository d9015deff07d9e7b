"""The node's policy agent: keep this node's pods under their NetworkPolicy, and say so to the plugin.

Contract (the wiring around ``PolicyState``, the compiler and ``Enforcer``):

- ``start()`` reads every object and endpoint under the cluster prefix in
  one snapshot, replaces the table in one transaction, then serves:
  - a watch thread that applies each event to the state and wakes the sync
    thread (a change is enforced within milliseconds of its watch event);
  - a sync thread that compiles and applies only what changed, and every
    ``resync_seconds`` replaces the whole table (sweeping drift) and
    deletes this node's endpoints whose network namespace is gone;
  - the endpoint socket (``netpol`` plugin): ``add`` stores the endpoint,
    enforces, and answers only then; ``del`` removes it; ``check`` and
    ``status`` answer from memory.
- etcd unreachable: the watch thread backs off and re-reads a snapshot
  when it can; meanwhile the kernel keeps the last state enforced (never
  flushed), plugin requests are still enforced locally, and endpoint
  writes that failed are retried by the sync thread.
- Everything that changes state or the kernel holds one lock, so a
  plugin's ``add`` is enforced before its answer and never interleaves
  with a watch-driven sync.
- Once the first load is in force (by the sync thread, so start does not
  wait for it) and after every slow resync the heap is settled
  (``settle_heap``): what is alive then is moved out of the cyclic
  collector's sweeps, so a label change never waits behind a full
  collection of the 10k-pod state (~30-100 ms here, the tail of its p99).
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import logging
import os
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pycni.cluster.kv import KV, KeyValue, KVError, Put
from pycni.policy.compile import Compiler
from pycni.policy.endpoints import Endpoint, EndpointError, encode, endpoint_key, from_fields
from pycni.policy.enforcer import ApplyElements, Enforcer, SyncStats
from pycni.policy.state import PolicyState
from pycni.policy.store import ObjectStore
from pycni.policy.table_audit import ruleset_summary

__all__ = ["AgentStats", "PolicyAgent", "settle_heap"]

log = logging.getLogger("pycni.policy")
_MAX_REQUEST = 1 << 16


@dataclass
class AgentStats:
    """What the agent exports as metrics (``pycni.policy.metrics`` renders them)."""

    syncs: dict[str, int] = field(default_factory=lambda: {"full": 0, "partial": 0, "none": 0})
    last_sync: SyncStats | None = None
    sync_seconds: list[float] = field(default_factory=list)  # recent, for the histogram
    failures: int = 0
    plugin_requests: dict[str, int] = field(default_factory=dict)
    start_seconds: dict[str, float] = field(default_factory=dict)  # the cold start's phases: read, decode, ...


def settle_heap() -> None:
    """Collect once, then freeze what survives (``gc.freeze``).

    The state, the compiler's caches and the committed ruleset are long-lived: a full collection walks
    every one of them (130k objects at 1,000 policies and 10k pods), and one falls every few dozen
    syncs. Frozen, they are skipped; what a later sync frees is still freed by reference counting, and
    the next settle (the slow resync) unfreezes first, so cycles among the old objects are collected then.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class PolicyAgent:
    def __init__(self, kv: KV, node: str, apply_nft: Callable[[str], None], *, prefix: str = "/pycni",
                 socket_path: str = "", resync_seconds: float = 300.0,
                 netns_exists: Callable[[str], bool] = os.path.exists,
                 apply_elements: ApplyElements | None = None) -> None:
        self.kv = kv
        self.node = node
        self.store = ObjectStore(kv, prefix)
        self.state = PolicyState(self.store)
        self.enforcer = Enforcer(apply_nft, apply_elements=apply_elements)
        self.compiler = Compiler()  # keeps what did not change between syncs
        self.socket_path = socket_path
        self.resync_seconds = resync_seconds
        self.netns_exists = netns_exists
        self.stats = AgentStats()
        self._lock = threading.RLock()
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._pending_writes: dict[str, bytes | None] = {}  # endpoint key -> value (None = delete)
        self._threads: list[threading.Thread] = []
        self._server: socketserver.ThreadingUnixStreamServer | None = None
        # Observers (metrics, the deny log) called under the lock after every sync with its stats, its
        # duration and the seconds since the oldest watch event it enforces (None when none was waiting).
        self.on_sync: list[Callable[[SyncStats, float, float | None], None]] = []
        self._oldest_event: float | None = None

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        # Without the cyclic collector while ~200k long-lived objects are made: its passes over the
        # growing heap cost ~0.1 s of the cold start, and the sync thread settles the heap right after.
        collecting = gc.isenabled()
        gc.disable()
        try:
            phases = self.stats.start_seconds
            self._load_snapshot(phases)
            with self._lock:
                began = time.perf_counter()
                desired = self.compiler.compile(self.state.view(self.node))
                phases["compile"] = time.perf_counter() - began
                self._record(self.enforcer.resync(desired))
                phases["kernel"] = time.perf_counter() - began - phases["compile"]
        finally:
            if collecting:
                gc.enable()
        self._spawn(self._watch_loop, "pycni-policy-watch")
        self._spawn(self._sync_loop, "pycni-policy-sync")
        if self.socket_path:
            self._serve()

    def stop(self) -> None:
        self._stop.set()
        self._dirty.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.socket_path)
        for thread in self._threads:
            thread.join(timeout=5)

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    # -- state from the store --------------------------------------------------------

    def _load_snapshot(self, phases: dict[str, float] | None = None) -> int:
        began = time.perf_counter()
        # Only the objects and the endpoints (not the cluster's leases), the two read side by side.
        (objects, endpoints), revision = self.kv.list_prefixes(
            [self.store.objects_prefix, self.state.endpoint_prefix], concurrently=True)
        read = time.perf_counter()
        with self._lock:
            bad = self.state.load(itertools.chain(objects, endpoints), revision)
        if phases is not None:
            phases["read"], phases["decode"] = read - began, time.perf_counter() - read
        for key in bad:
            log.warning("policy: ignoring %s: its value does not decode", key)
        return revision

    def _watch_loop(self) -> None:
        revision = self.state.revision
        backoff = 0.2
        while not self._stop.is_set():
            try:
                for event in self.kv.watch_prefix(self.store.prefix + "/", revision + 1, self._stop):
                    self._on_event(event.type, event.kv)
                    revision = event.kv.mod_revision
                    backoff = 0.2
                return
            except Exception as exc:  # KVUnavailable, Compacted, a broken stream: re-read and go on
                log.warning("policy: watch broke (%s); re-reading in %.1fs", exc, backoff)
                if self._stop.wait(backoff):
                    return
                backoff = min(backoff * 2, 5.0)
                with contextlib.suppress(KVError):
                    revision = self._load_snapshot()
                    self._dirty.set()

    def _on_event(self, kind: str, kv: KeyValue) -> None:
        with self._lock:
            if self._oldest_event is None:
                self._oldest_event = time.monotonic()
            if kind == "put":
                if not self.state.put(kv):
                    log.warning("policy: ignoring %s: its value does not decode", kv.key)
            else:
                self.state.delete(kv.key, kv.mod_revision)
        self._dirty.set()

    # -- enforcing ----------------------------------------------------------------------

    def sync(self) -> SyncStats:
        """Compile what the state says and apply the difference (under the lock)."""
        with self._lock:
            start = time.monotonic()
            try:
                stats = self.enforcer.enforce(self.compiler.compile(self.state.view(self.node)))
            except Exception:
                self.stats.failures += 1
                raise
            self._record(stats, time.monotonic() - start)
            return stats

    def _record(self, stats: SyncStats, seconds: float | None = None) -> None:
        self.stats.syncs[stats.kind] += 1
        self.stats.last_sync = stats
        self.stats.sync_seconds = [*self.stats.sync_seconds[-999:], stats.seconds if seconds is None else seconds]
        waited = None if self._oldest_event is None else time.monotonic() - self._oldest_event
        self._oldest_event = None
        for observer in self.on_sync:
            try:
                observer(stats, stats.seconds if seconds is None else seconds, waited)
            except Exception as exc:  # an observer must never stop enforcement
                log.warning("policy: sync observer failed: %s", exc)

    def _sync_loop(self) -> None:
        with self._lock:  # here, not in start: the table is in force before this ~0.1 s is spent
            settle_heap()
        next_resync = time.monotonic() + self.resync_seconds
        while not self._stop.is_set():
            self._dirty.wait(timeout=max(0.0, min(1.0, next_resync - time.monotonic())))
            if self._stop.is_set():
                return
            self._dirty.clear()
            self._flush_pending_writes()
            try:
                if time.monotonic() >= next_resync:
                    self._sweep_endpoints()
                    with self._lock:
                        # A fresh compile too: the slow timer is where any drift of the caches would end.
                        self.compiler = Compiler()
                        self._record(self.enforcer.resync(self.compiler.compile(self.state.view(self.node))))
                        settle_heap()
                    next_resync = time.monotonic() + self.resync_seconds
                else:
                    self.sync()
            except Exception as exc:
                log.error("policy: sync failed, the kernel keeps the last state enforced: %s", exc)

    # -- endpoints ----------------------------------------------------------------------

    def _write(self, key: str, value: bytes | None) -> None:
        try:
            if value is None:
                self.kv.delete(key)
            else:
                self.kv.txn([], [Put(key, value)])
            self._pending_writes.pop(key, None)
        except KVError as exc:
            log.warning("policy: endpoint %s not written yet (%s); retrying", key, exc)
            self._pending_writes[key] = value

    def _flush_pending_writes(self) -> None:
        with self._lock:
            for key, value in list(self._pending_writes.items()):
                self._write(key, value)

    def add_endpoint(self, endpoint: Endpoint) -> SyncStats:
        key = endpoint_key(self.store.prefix, endpoint)
        with self._lock:
            value = encode(endpoint)
            self.state.put(KeyValue(key, value, 0, 0))
            self._write(key, value)
            return self.sync()

    def remove_endpoint(self, container_id: str, ifname: str) -> SyncStats:
        with self._lock:
            for key, endpoint in list(self.state.endpoints.items()):
                if endpoint.node == self.node and endpoint.container_id == container_id and endpoint.ifname == ifname:
                    self.state.delete(key)
                    self._write(key, None)
            return self.sync()

    def _sweep_endpoints(self) -> None:
        with self._lock:
            for key, endpoint in list(self.state.endpoints.items()):
                if endpoint.node == self.node and endpoint.netns and not self.netns_exists(endpoint.netns):
                    log.info("policy: %s's attachment %s is gone; removing its endpoint", endpoint.pod_key,
                             endpoint.container_id[:12])
                    self.state.delete(key)
                    self._write(key, None)

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """One plugin request; the answer the plugin waits for."""
        op = request.get("op")
        self.stats.plugin_requests[str(op)] = self.stats.plugin_requests.get(str(op), 0) + 1
        try:
            if op == "add":
                stats = self.add_endpoint(from_fields(request, self.node))
                return {"ok": True, "sync": stats.kind, "commands": stats.commands}
            if op == "del":
                self.remove_endpoint(str(request.get("containerID", "")), str(request.get("ifname", "")))
                return {"ok": True}
            if op == "check":
                return self._check(str(request.get("containerID", "")), str(request.get("ifname", "")))
            if op == "status":
                return {"ok": True}
            if op == "ruleset":  # pycni doctor's policy check compares it with the kernel's table
                with self._lock:
                    committed = self.enforcer.committed
                if committed is None:
                    return {"ok": False, "error": "nothing committed yet (the first sync has not run)"}
                return {"ok": True, "summary": ruleset_summary(committed)}
        except EndpointError as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:
            return {"ok": False, "error": f"policy not enforced: {exc}"}
        return {"ok": False, "error": f"op: unknown operation {op!r}"}

    def _check(self, container_id: str, ifname: str) -> dict[str, Any]:
        with self._lock:
            found = [e for e in self.state.endpoints.values()
                     if e.node == self.node and e.container_id == container_id and e.ifname == ifname]
            if not found:
                return {"ok": False, "error": f"no endpoint for container {container_id[:12]} {ifname} on this node"}
            if self.enforcer.committed != self.compiler.compile(self.state.view(self.node)):
                return {"ok": False, "error": "the kernel is behind the policy state (a sync is pending or failed)"}
        return {"ok": True}

    def _serve(self) -> None:
        agent = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                data = self.rfile.read(_MAX_REQUEST)
                try:
                    request = json.loads(data)
                    answer = agent.handle(request) if isinstance(request, dict) else {
                        "ok": False, "error": "request is not a JSON object"}
                except ValueError:
                    answer = {"ok": False, "error": "request is not JSON"}
                self.wfile.write(json.dumps(answer).encode())

        os.makedirs(os.path.dirname(self.socket_path) or ".", mode=0o700, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        old_umask = os.umask(0o177)
        try:
            self._server = socketserver.ThreadingUnixStreamServer(self.socket_path, Handler)
        finally:
            os.umask(old_umask)
        self._server.daemon_threads = True
        server = self._server
        self._spawn(lambda: server.serve_forever(poll_interval=0.05), "pycni-policy-socket")
