"""``KV`` on etcd v3 through its gRPC API, with the stubs of the ``etcd-sdk-python`` package.

Why gRPC: etcd answers the JSON gateway by encoding every key and every
event to JSON once per request or watch stream (a 21k-key range costs it
~0.45 s of CPU; one event to 1,000 watchers ~0.1 ms each); over gRPC it
sends protobuf, encoded once per event. ``etcd-sdk-python`` (import name
``pyetcd``, a maintained fork of python-etcd3) ships etcd's generated
protobuf and gRPC stubs; its high-level client hides revisions and
compaction, so the requests are built here from the stubs, and the mapping
to the ``KV`` contract (kv.py) is explicit, as in the gateway client
(``etcd.py``), whose guarantees this one keeps:

- One gRPC channel per endpoint for the client's life; unary calls and
  every watch share it (HTTP/2 streams). Calls go to the current endpoint;
  when it cannot be reached they move on to the next, round the list with a
  growing pause, for up to ``retry_for`` seconds, then ``KVUnavailable``
  with the gateway client's wording. Writes are conditional (``txn``), so a
  write sent twice after a lost reply fails its check the second time.
- ``https://`` endpoints get a TLS channel (CA, client certificate and key).
- A watch is one bidirectional stream; it resumes from the revision after
  the last event (or progress notification) when the stream breaks or etcd
  restarts, raises ``Compacted`` when its start is gone, and returns at
  once when ``stop`` is set (a guard cancels the stream).
- gRPC keepalive pings (every 10 s, 5 s to answer) notice a silent peer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

# gRPC's core logs failed handshakes and broken connections to stderr on its own; this client reports
# them (as KVUnavailable, in the log), so the core stays quiet unless the user asks for it.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")
# gRPC's fork handlers run in every child a process forks (os.fork, or subprocess with preexec_fn) and
# abort some of them (SIGABRT before exec: 8 children in 200 with a channel open, measured here). pycni
# never uses a channel across fork; children exec. Read when grpc is first imported: set before that.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import grpc  # type: ignore[import-untyped]
from pyetcd.etcdrpc import rpc_pb2 as pb  # type: ignore[import-untyped]
from pyetcd.etcdrpc import rpc_pb2_grpc as pb_grpc

from pycni.cluster.etcd_common import (
    check_tls,
    endpoint_url,
    parse_endpoints,
    permanent,
    short_reason,
    thread_in_process_netns,
    unreachable,
)
from pycni.cluster.kv import (
    Compacted,
    KeyValue,
    KVError,
    KVUnavailable,
    LeaseExpired,
    Put,
    WatchEvent,
    prefix_end,
)

__all__ = ["EtcdGrpcKV"]

log = logging.getLogger("pycni.cluster.etcd")

T = TypeVar("T")

_GUARD_LINGER = 5.0  # how long a watch stream's stop guard outlives the stream, at most
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", -1),  # a policy agent's listing is tens of MB; etcd sends up to 2 GB
    ("grpc.max_send_message_length", -1),
    ("grpc.enable_http_proxy", 0),  # etcd is reached directly, whatever $http_proxy says
    ("grpc.keepalive_time_ms", 10_000),  # etcd lets clients ping every 5 s or slower
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.initial_reconnect_backoff_ms", 100),  # a restarted etcd is seen within a second, not gRPC's 1-120 s
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1_000),
]


class _Endpoint:
    def __init__(self, scheme: str, host: str, port: int, *, ca_file: str | None, cert_file: str | None,
                 key_file: str | None) -> None:
        self.url = endpoint_url(scheme, host, port)
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if scheme == "https":
            def read(path: str | None) -> bytes | None:
                return Path(path).read_bytes() if path else None

            credentials = grpc.ssl_channel_credentials(read(ca_file), read(key_file), read(cert_file))
            self.channel = grpc.secure_channel(target, credentials, _CHANNEL_OPTIONS)
        else:
            self.channel = grpc.insecure_channel(target, _CHANNEL_OPTIONS)
        self.kv = pb_grpc.KVStub(self.channel)
        self.watch = pb_grpc.WatchStub(self.channel)
        self.lease = pb_grpc.LeaseStub(self.channel)


def _kv(item: Any) -> KeyValue:
    return KeyValue(key=item.key.decode("utf-8", "replace"), value=item.value, mod_revision=item.mod_revision,
                    create_revision=item.create_revision, lease=item.lease)


def _range(prefix: str, revision: int = 0) -> Any:
    key = prefix.encode()
    # etcd returns a range's keys in key order when no sort is asked for
    return pb.RangeRequest(key=key, range_end=prefix_end(key), revision=revision)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, grpc.RpcError):
        details = exc.details() if hasattr(exc, "details") else None
        return short_reason(str(details or ""), str(exc.code()) if hasattr(exc, "code") else type(exc).__name__)
    return short_reason(str(exc), type(exc).__name__)


class EtcdGrpcKV:
    """The ``KV`` protocol on one etcd cluster over gRPC (several endpoints for failover; TLS with client certs)."""

    def __init__(
        self,
        endpoints: str | Sequence[str],
        *,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        timeout: float = 5.0,
        retry_for: float = 10.0,
    ) -> None:
        if not thread_in_process_netns():
            raise KVError("the gRPC etcd client cannot run in a thread that entered another network namespace: "
                          "its connections would leave from the process's (use pycni.cluster.etcd.etcd_client)")
        parsed = parse_endpoints(endpoints)
        check_tls(parsed, ca_file, cert_file, key_file)
        self._endpoints = [_Endpoint(scheme, host, port, ca_file=ca_file, cert_file=cert_file, key_file=key_file)
                           for scheme, host, port in parsed]
        self._current = 0
        self._lock = threading.Lock()
        self.timeout = timeout
        self.retry_for = retry_for
        self._watches: set[Any] = set()
        self._closed = False

    @property
    def endpoints(self) -> list[str]:
        return [e.url for e in self._endpoints]

    def __repr__(self) -> str:
        return f"EtcdGrpcKV({','.join(self.endpoints)})"

    # -- KV ------------------------------------------------------------------------------

    def get(self, key: str) -> KeyValue | None:
        result = self._call("get", lambda e: e.kv.Range(pb.RangeRequest(key=key.encode()), timeout=self.timeout))
        return _kv(result.kvs[0]) if result.kvs else None

    def list_prefix(self, prefix: str, revision: int = 0) -> tuple[list[KeyValue], int]:
        result = self._call("list", lambda e: e.kv.Range(_range(prefix, revision), timeout=self.timeout))
        return [_kv(item) for item in result.kvs], revision or result.header.revision

    def list_prefixes(self, prefixes: Sequence[str], *, concurrently: bool = False) -> tuple[list[list[KeyValue]], int]:
        if concurrently and len(prefixes) > 1:
            return self._list_concurrently(prefixes)
        # One read-only transaction of ranges: one round trip, one revision.
        request = pb.TxnRequest(success=[pb.RequestOp(request_range=_range(p)) for p in prefixes])
        result = self._call("list", lambda e: e.kv.Txn(request, timeout=self.timeout))
        if len(result.responses) != len(prefixes):
            raise KVError(f"etcd answered {len(result.responses)} of {len(prefixes)} ranges")
        return [[_kv(item) for item in r.response_range.kvs] for r in result.responses], result.header.revision

    def _list_concurrently(self, prefixes: Sequence[str]) -> tuple[list[list[KeyValue]], int]:
        # One request each, at once (etcd builds the answers on its cores side by side). Each read is at
        # the store's revision when it ran; those read before the latest one are read again at it.
        with ThreadPoolExecutor(len(prefixes), thread_name_prefix="etcd-list") as pool:
            first = list(pool.map(self.list_prefix, prefixes))
            revision = max(read_at for _, read_at in first)
            stale = [i for i, (_, read_at) in enumerate(first) if read_at != revision]
            again = dict(zip(stale, pool.map(lambda i: self.list_prefix(prefixes[i], revision)[0], stale), strict=True))
        return [again.get(i, kvs) for i, (kvs, _) in enumerate(first)], revision

    def txn(self, checks: Sequence[tuple[str, int]], puts: Sequence[Put] = (), deletes: Sequence[str] = ()) -> int:
        compare = [
            pb.Compare(key=key.encode(), target=pb.Compare.CREATE, result=pb.Compare.EQUAL, create_revision=0)
            if revision == 0 else
            pb.Compare(key=key.encode(), target=pb.Compare.MOD, result=pb.Compare.EQUAL, mod_revision=revision)
            for key, revision in checks
        ]
        success = [pb.RequestOp(request_put=pb.PutRequest(key=p.key.encode(), value=p.value, lease=p.lease))
                   for p in puts]
        success += [pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=key.encode())) for key in deletes]
        request = pb.TxnRequest(compare=compare, success=success)
        result = self._call("txn", lambda e: e.kv.Txn(request, timeout=self.timeout),
                            lease=next((p.lease for p in puts if p.lease), 0))
        return int(result.header.revision) if result.succeeded else 0

    def create(self, key: str, value: bytes, lease: int = 0) -> bool:
        return self.txn([(key, 0)], [Put(key, value, lease)]) > 0

    def update(self, key: str, value: bytes, mod_revision: int, lease: int = 0) -> bool:
        if mod_revision <= 0:
            raise ValueError("update needs the mod_revision of an existing key")
        return self.txn([(key, mod_revision)], [Put(key, value, lease)]) > 0

    def delete(self, key: str, mod_revision: int | None = None) -> bool:
        if mod_revision is not None:
            return self.txn([(key, mod_revision)], (), [key]) > 0
        request = pb.DeleteRangeRequest(key=key.encode())
        result = self._call("delete", lambda e: e.kv.DeleteRange(request, timeout=self.timeout))
        return int(result.deleted) > 0

    def grant_lease(self, ttl: int) -> int:
        if ttl <= 0:
            raise ValueError("a lease needs a positive TTL")
        result = self._call("grant lease", lambda e: e.lease.LeaseGrant(pb.LeaseGrantRequest(TTL=ttl),
                                                                         timeout=self.timeout))
        if result.error:
            raise KVError(f"etcd refused to grant a lease: {result.error}")
        return int(result.ID)

    def keepalive(self, lease_id: int) -> int:
        def once(endpoint: _Endpoint) -> Any:
            # LeaseKeepAlive is a stream; one request, one answer, then the stream ends
            stream = endpoint.lease.LeaseKeepAlive(iter([pb.LeaseKeepAliveRequest(ID=lease_id)]), timeout=self.timeout)
            try:
                return next(stream, None)
            finally:
                stream.cancel()

        result = self._call("keepalive", once, lease=lease_id)
        if result is None or result.TTL <= 0:
            raise LeaseExpired(lease_id)
        return int(result.TTL)

    def time_to_live(self, lease_id: int) -> int:
        try:
            result = self._call("lease ttl", lambda e: e.lease.LeaseTimeToLive(
                pb.LeaseTimeToLiveRequest(ID=lease_id), timeout=self.timeout), lease=lease_id)
        except LeaseExpired:
            return -1
        return int(result.TTL) if result.TTL >= 0 else -1

    def revoke(self, lease_id: int) -> None:
        with contextlib.suppress(LeaseExpired):
            self._call("revoke", lambda e: e.lease.LeaseRevoke(pb.LeaseRevokeRequest(ID=lease_id),
                                                               timeout=self.timeout), lease=lease_id)

    def watch_prefix(self, prefix: str, start_revision: int, stop: threading.Event) -> Iterator[WatchEvent]:
        key = prefix.encode()
        next_revision = max(start_revision, 1)
        failing_since: float | None = None
        delay = 0.1
        while not stop.is_set() and not self._closed:
            endpoint = self._endpoint()
            create = pb.WatchCreateRequest(key=key, range_end=prefix_end(key), start_revision=next_revision,
                                           progress_notify=True)
            # Only the create request is sent; the half-closed stream goes on delivering events.
            stream = endpoint.watch.Watch(iter([pb.WatchRequest(create_request=create)]))
            with self._lock:
                self._watches.add(stream)
            done = threading.Event()
            threading.Thread(target=_cancel_on_stop, args=(stream, stop, done), name="etcd-watch-stop",
                             daemon=True).start()
            try:
                for result in stream:
                    if stop.is_set():
                        return
                    if result.compact_revision > 0:
                        raise Compacted(int(result.compact_revision))
                    if result.canceled:
                        reason = result.cancel_reason or "canceled by the server"
                        raise KVError(f"etcd ended the watch on {prefix}: {reason}")
                    if result.created:
                        failing_since, delay = None, 0.1
                        continue
                    for item in result.events:
                        kv = _kv(item.kv)
                        next_revision = kv.mod_revision + 1
                        yield WatchEvent("delete" if item.type == 1 else "put", kv)
                    if not result.events and result.header.revision:  # progress: nothing up to here is missing
                        next_revision = max(next_revision, result.header.revision + 1)
                if stop.is_set() or self._closed:
                    return
                failure: BaseException = ConnectionError("the server closed the stream")
            except grpc.RpcError as exc:
                if stop.is_set() or self._closed:
                    return
                failure = exc
            finally:
                done.set()
                stream.cancel()
                with self._lock:
                    self._watches.discard(stream)
            failing_since = failing_since or time.monotonic()
            self._failed(endpoint, failure, failing_since, "watch", 0)
            log.info("watch on %s broke (%s); resuming from revision %d", prefix, _reason(failure), next_revision)
            stop.wait(delay)
            delay = min(delay * 2, 2.0)

    def close(self) -> None:
        self._closed = True
        with self._lock:
            streams = list(self._watches)
        for stream in streams:
            stream.cancel()
        for endpoint in self._endpoints:
            endpoint.channel.close()

    # -- plumbing -------------------------------------------------------------------------

    def compact(self, revision: int) -> None:
        """Compact etcd's history up to ``revision`` (for tests and operators)."""
        request = pb.CompactionRequest(revision=revision, physical=True)
        self._call("compact", lambda e: e.kv.Compact(request, timeout=self.timeout))

    def _endpoint(self) -> _Endpoint:
        with self._lock:
            return self._endpoints[self._current]

    def _failed(self, endpoint: _Endpoint, exc: BaseException, since: float, what: str, attempt: int) -> None:
        """Move on to the next endpoint; give up with KVUnavailable once ``retry_for`` has passed (at once
        when every endpoint failed its TLS handshake: waiting does not fix certificates)."""
        with self._lock:
            if self._endpoints[self._current] is endpoint:
                self._current = (self._current + 1) % len(self._endpoints)
        reason = _reason(exc)
        give_up = permanent(reason) and attempt + 1 >= len(self._endpoints)
        if give_up or time.monotonic() - since >= self.retry_for:
            raise unreachable(self.endpoints, what, time.monotonic() - since, reason) from exc

    def _call(self, what: str, call: Callable[[_Endpoint], T], *, lease: int = 0) -> T:
        if self._closed:
            raise KVUnavailable("etcd client is closed")
        since = time.monotonic()
        attempt = 0
        while True:
            endpoint = self._endpoint()
            try:
                return call(endpoint)
            except grpc.RpcError as exc:
                code = exc.code() if hasattr(exc, "code") else None
                message = str(exc.details() if hasattr(exc, "details") else "") or str(code)
                if _retryable(code, message):
                    self._failed(endpoint, exc, since, what, attempt)
                    attempt += 1
                    if attempt % len(self._endpoints) == 0:
                        time.sleep(min(0.1 * 2 ** (attempt // len(self._endpoints)), 1.0))
                    continue
                if "lease not found" in message and lease:
                    raise LeaseExpired(lease) from None
                if "compacted" in message:
                    raise Compacted(0) from None
                raise KVError(f"etcd refused to {what}: {message}") from None


def _retryable(code: Any, message: str) -> bool:
    """Whether a failed call may go to the next endpoint and be tried again.

    UNAVAILABLE and DEADLINE_EXCEEDED: the endpoint could not be reached, or etcd had no leader, was
    changing leaders or timed the request out ("etcdserver: leader changed"). UNKNOWN only from the
    transport (a reset stream), not from etcd: everything else etcd says is an answer.
    """
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return True
    return bool(code == grpc.StatusCode.UNKNOWN and not message.startswith(("etcdserver:", "mvcc:")))


def _cancel_on_stop(stream: Any, stop: threading.Event, done: threading.Event) -> None:
    """Cancel ``stream`` once ``stop`` is set (ending a blocked read at once), unless its reader is ``done``."""
    while not done.is_set():
        if stop.wait(_GUARD_LINGER):
            stream.cancel()
            return
