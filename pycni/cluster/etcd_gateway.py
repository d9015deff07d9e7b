"""``KV`` on etcd v3, through etcd's JSON gateway with the etcd3gw client.

Not the client users get (``pycni.cluster.etcd.EtcdKV`` is the gRPC one,
etcd_grpc.py): kept as the reference the convergence benchmark measures
gRPC against (``--client gateway``). Why etcd3gw: it is maintained and speaks etcd's gRPC
gateway (plain HTTP and JSON), which Debian's etcd 3.4 serves on the client
port; the gRPC ``etcd3`` package is unmaintained. etcd3gw gives us the connection setup
(URLs, API version, TLS) and the unary calls; the request bodies are
written here, so the mapping to the ``KV`` contract (kv.py) is explicit:
revisions as integers, transactions comparing ``mod_revision``, and a
watch that reports compaction and survives restarts, which etcd3gw's own
watch helper does not.

Failover and retries: calls go to the current endpoint; when it cannot be
reached they move to the next one, round the list with a growing pause,
for up to ``retry_for`` seconds, then raise ``KVUnavailable``. A write
whose reply was lost may thus be sent twice. Every write the subnet
manager makes is conditional (``txn`` with revision checks), so the second
copy fails its check instead of applying twice, and the manager's next read
shows what happened.

Watches ride on one HTTP stream each (``/v3/watch``). TCP keepalive
notices a silent peer within about 25 s; a closed or broken stream is
reopened from the revision after the last event delivered (or the last
progress notification), on the next endpoint if need be; a start revision
that etcd has compacted raises ``Compacted``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection

from pycni.cluster.etcd_common import (
    check_tls,
    endpoint_url,
    parse_endpoints,
    permanent,
    short_reason,
    unreachable,
)
from pycni.cluster.kv import Compacted, KeyValue, KVError, KVUnavailable, LeaseExpired, Put, WatchEvent, prefix_end

__all__ = ["EtcdGatewayKV"]

log = logging.getLogger("pycni.cluster.etcd")

_GUARD_LINGER = 5.0  # how long a watch stream's stop guard outlives the stream, at most


class _KeepaliveAdapter(HTTPAdapter):
    """TCP keepalive on every connection, so a watch on a vanished peer fails instead of hanging."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        options = [*HTTPConnection.default_socket_options, (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
        for name, value in (("TCP_KEEPIDLE", 10), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3)):
            if hasattr(socket, name):
                options.append((socket.IPPROTO_TCP, getattr(socket, name), value))
        kwargs["socket_options"] = options
        super().init_poolmanager(*args, **kwargs)


class _Endpoint:
    def __init__(self, scheme: str, host: str, port: int, *, ca_file: str | None, cert_file: str | None,
                 key_file: str | None, timeout: float) -> None:
        import etcd3gw

        self.url = endpoint_url(scheme, host, port)
        self.timeout = timeout
        session = requests.Session()
        session.mount("http://", _KeepaliveAdapter())
        session.mount("https://", _KeepaliveAdapter())
        # Per request, because requests lets $REQUESTS_CA_BUNDLE override a session's CA bundle.
        self.verify: str | bool = ca_file or True
        if cert_file and key_file:
            session.cert = (cert_file, key_file)
        # etcd 3.4 and later serve the gateway at /v3/ (3.3 had /v3beta/): no discovery round trip
        self.client = etcd3gw.client(host=host, port=port, protocol=scheme, timeout=timeout, session=session,
                                     api_path="/v3/")

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        result = self.client.post(self.client.get_url(path), json=body, verify=self.verify)
        return result if isinstance(result, dict) else {}

    def open_watch(self, body: dict[str, Any]) -> requests.Response:
        url = self.client.get_url("/watch")
        response = self.client.session.post(url, json=body, stream=True, timeout=(self.timeout, None),
                                            verify=self.verify)
        if response.status_code != 200:
            text = response.text
            response.close()
            raise _Refused(_message(text) or f"HTTP {response.status_code}")
        return response


class _Refused(Exception):
    """etcd answered and said no."""


def _b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def _unb64(data: str) -> bytes:
    # base64.b64decode without its argument checks (a listing decodes two of these per key)
    return binascii.a2b_base64(data) if data else b""


def _message(text: str | None) -> str:
    if not text:
        return ""
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()
    if isinstance(data, dict):
        return str(data.get("message") or data.get("error") or text).strip()
    return text.strip()


def _kv(item: dict[str, Any]) -> KeyValue:
    return KeyValue(
        key=_unb64(item.get("key", "")).decode("utf-8", "replace"),
        value=_unb64(item.get("value", "")),
        mod_revision=int(item.get("mod_revision", 0)),
        create_revision=int(item.get("create_revision", 0)),
        lease=int(item.get("lease", 0)),
    )


def _revision(result: dict[str, Any]) -> int:
    return int(result.get("header", {}).get("revision", 0))


class EtcdGatewayKV:
    """The ``KV`` protocol on one etcd cluster (several endpoints for failover; TLS with client certs)."""

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
        parsed = parse_endpoints(endpoints)
        check_tls(parsed, ca_file, cert_file, key_file)
        self._endpoints = [
            _Endpoint(scheme, host, port, ca_file=ca_file, cert_file=cert_file, key_file=key_file, timeout=timeout)
            for scheme, host, port in parsed
        ]
        self._current = 0
        self._lock = threading.Lock()
        self.retry_for = retry_for
        self._watches: set[requests.Response] = set()
        self._closed = False

    @property
    def endpoints(self) -> list[str]:
        return [e.url for e in self._endpoints]

    def __repr__(self) -> str:
        return f"EtcdGatewayKV({','.join(self.endpoints)})"

    # -- KV ------------------------------------------------------------------------------

    def get(self, key: str) -> KeyValue | None:
        result = self._call("get", "/kv/range", {"key": _b64(key)})
        kvs = result.get("kvs") or []
        return _kv(kvs[0]) if kvs else None

    def list_prefix(self, prefix: str, revision: int = 0) -> tuple[list[KeyValue], int]:
        body: dict[str, Any] = {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix.encode())),
                                "sort_order": "ASCEND", "sort_target": "KEY"}
        if revision:  # as the store was then (Compacted when that is gone)
            body["revision"] = revision
        result = self._call("list", "/kv/range", body)
        return [_kv(item) for item in result.get("kvs") or []], revision or _revision(result)

    def list_prefixes(self, prefixes: Sequence[str], *, concurrently: bool = False) -> tuple[list[list[KeyValue]], int]:
        if concurrently and len(prefixes) > 1:
            return self._list_concurrently(prefixes)
        # One read-only transaction of ranges: one round trip, one revision. etcd returns a range's keys
        # in key order when no sort is asked for.
        ranges = [{"request_range": {"key": _b64(p), "range_end": _b64(prefix_end(p.encode()))}} for p in prefixes]
        result = self._call("list", "/kv/txn", {"compare": [], "success": ranges, "failure": []})
        answers = result.get("responses") or []
        if len(answers) != len(prefixes):
            raise KVError(f"etcd answered {len(answers)} of {len(prefixes)} ranges")
        listed = [[_kv(item) for item in (answer.get("response_range") or {}).get("kvs") or []] for answer in answers]
        return listed, _revision(result)

    def _list_concurrently(self, prefixes: Sequence[str]) -> tuple[list[list[KeyValue]], int]:
        # The gateway turns a range into JSON on one core: a policy agent's 21k keys took ~0.45 s in one
        # answer and ~0.25 s split in two on two cores. Each read is at the store's revision when it
        # ran; those read before the latest one are read again at it, so all are one revision's.
        with ThreadPoolExecutor(len(prefixes), thread_name_prefix="etcd-list") as pool:
            first = list(pool.map(self.list_prefix, prefixes))
            revision = max(read_at for _, read_at in first)
            stale = [i for i, (_, read_at) in enumerate(first) if read_at != revision]
            again = dict(zip(stale, pool.map(lambda i: self.list_prefix(prefixes[i], revision)[0], stale), strict=True))
        return [again.get(i, kvs) for i, (kvs, _) in enumerate(first)], revision

    def txn(self, checks: Sequence[tuple[str, int]], puts: Sequence[Put] = (), deletes: Sequence[str] = ()) -> int:
        compare = []
        for key, revision in checks:
            if revision == 0:
                compare.append({"key": _b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"})
            else:
                compare.append({"key": _b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(revision)})
        success: list[dict[str, Any]] = []
        for put in puts:
            request: dict[str, Any] = {"key": _b64(put.key), "value": _b64(put.value)}
            if put.lease:
                request["lease"] = str(put.lease)
            success.append({"request_put": request})
        success += [{"request_delete_range": {"key": _b64(key)}} for key in deletes]
        result = self._call("txn", "/kv/txn", {"compare": compare, "success": success, "failure": []},
                            lease=next((p.lease for p in puts if p.lease), 0))
        return _revision(result) if result.get("succeeded") else 0

    def create(self, key: str, value: bytes, lease: int = 0) -> bool:
        return self.txn([(key, 0)], [Put(key, value, lease)]) > 0

    def update(self, key: str, value: bytes, mod_revision: int, lease: int = 0) -> bool:
        if mod_revision <= 0:
            raise ValueError("update needs the mod_revision of an existing key")
        return self.txn([(key, mod_revision)], [Put(key, value, lease)]) > 0

    def delete(self, key: str, mod_revision: int | None = None) -> bool:
        if mod_revision is not None:
            return self.txn([(key, mod_revision)], (), [key]) > 0
        result = self._call("delete", "/kv/deleterange", {"key": _b64(key)})
        return int(result.get("deleted", 0)) > 0

    def grant_lease(self, ttl: int) -> int:
        if ttl <= 0:
            raise ValueError("a lease needs a positive TTL")
        result = self._call("grant lease", "/lease/grant", {"TTL": str(ttl), "ID": "0"})
        if result.get("error"):
            raise KVError(f"etcd refused to grant a lease: {result['error']}")
        return int(result["ID"])

    def keepalive(self, lease_id: int) -> int:
        result = self._call("keepalive", "/lease/keepalive", {"ID": str(lease_id)}, lease=lease_id)
        ttl = int(result.get("result", {}).get("TTL", 0))
        if ttl <= 0:
            raise LeaseExpired(lease_id)
        return ttl

    def time_to_live(self, lease_id: int) -> int:
        result = self._call("lease ttl", "/kv/lease/timetolive", {"ID": str(lease_id)})
        ttl = int(result.get("TTL", -1))
        return ttl if ttl >= 0 else -1

    def revoke(self, lease_id: int) -> None:
        with contextlib.suppress(LeaseExpired):
            self._call("revoke", "/kv/lease/revoke", {"ID": str(lease_id)}, lease=lease_id)

    def watch_prefix(self, prefix: str, start_revision: int, stop: threading.Event) -> Iterator[WatchEvent]:
        from etcd3gw import exceptions as etcd_errors

        create = {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix.encode())), "progress_notify": True}
        next_revision = max(start_revision, 1)
        failing_since: float | None = None
        delay = 0.1
        while not stop.is_set() and not self._closed:
            endpoint = self._endpoint()
            try:
                response = endpoint.open_watch({"create_request": {**create, "start_revision": str(next_revision)}})
            except (requests.RequestException, _Refused, etcd_errors.Etcd3Exception) as exc:
                failing_since = failing_since or time.monotonic()
                self._failed(endpoint, exc, failing_since, "watch")
                stop.wait(delay)
                delay = min(delay * 2, 2.0)
                continue
            try:
                for result in self._stream(response, stop):
                    if result.get("compact_revision") and int(result["compact_revision"]) > 0:
                        raise Compacted(int(result["compact_revision"]))
                    if result.get("canceled"):
                        reason = result.get("cancel_reason") or "canceled by the server"
                        raise KVError(f"etcd ended the watch on {prefix}: {reason}")
                    if result.get("created"):
                        failing_since, delay = None, 0.1
                        continue
                    events = result.get("events") or []
                    for item in events:
                        kv = _kv(item["kv"])
                        next_revision = kv.mod_revision + 1
                        yield WatchEvent("delete" if item.get("type") == "DELETE" else "put", kv)
                    if not events and _revision(result):  # progress: nothing up to here is missing
                        next_revision = max(next_revision, _revision(result) + 1)
            except _StreamBroken as exc:
                failing_since = failing_since or time.monotonic()
                if not stop.is_set():
                    self._failed(endpoint, exc, failing_since, "watch")
                    log.info("watch on %s broke (%s); resuming from revision %d", prefix, exc, next_revision)
                    stop.wait(delay)
                    delay = min(delay * 2, 2.0)
            finally:
                self._close_stream(response)

    def close(self) -> None:
        self._closed = True
        with self._lock:
            streams = list(self._watches)
        for response in streams:
            self._close_stream(response)
        for endpoint in self._endpoints:
            endpoint.client.session.close()

    # -- plumbing -------------------------------------------------------------------------

    def compact(self, revision: int) -> None:
        """Compact etcd's history up to ``revision`` (for tests and operators)."""
        self._call("compact", "/kv/compaction", {"revision": str(revision), "physical": True})

    def _endpoint(self) -> _Endpoint:
        with self._lock:
            return self._endpoints[self._current]

    def _failed(self, endpoint: _Endpoint, exc: BaseException, since: float, what: str, attempt: int = 0) -> None:
        """Move on to the next endpoint; give up with KVUnavailable once ``retry_for`` has passed (at once
        when every endpoint failed its TLS handshake: waiting does not fix certificates)."""
        with self._lock:
            if self._endpoints[self._current] is endpoint:
                self._current = (self._current + 1) % len(self._endpoints)
        give_up = _permanent(exc) and attempt + 1 >= len(self._endpoints)
        if give_up or time.monotonic() - since >= self.retry_for:
            raise unreachable(self.endpoints, what, time.monotonic() - since, _short(exc)) from exc

    def _call(self, what: str, path: str, body: dict[str, Any], *, lease: int = 0) -> dict[str, Any]:
        from etcd3gw import exceptions as etcd_errors

        if self._closed:
            raise KVUnavailable("etcd client is closed")
        since = time.monotonic()
        attempt = 0
        while True:
            endpoint = self._endpoint()
            try:
                return endpoint.post(path, body)
            except (etcd_errors.ConnectionFailedError, etcd_errors.ConnectionTimeoutError,
                    etcd_errors.InternalServerError, requests.RequestException) as exc:
                self._failed(endpoint, exc, since, what, attempt)
                attempt += 1
                if attempt % len(self._endpoints) == 0:
                    time.sleep(min(0.1 * 2 ** (attempt // len(self._endpoints)), 1.0))
            except etcd_errors.Etcd3Exception as exc:
                message = _message(exc.detail_text) or str(exc)
                if "lease not found" in message and lease:
                    raise LeaseExpired(lease) from None
                if "compacted" in message:
                    raise Compacted(0) from None
                raise KVError(f"etcd refused to {what}: {message}") from None

    def _stream(self, response: requests.Response, stop: threading.Event) -> Iterator[dict[str, Any]]:
        """The watch responses of one stream until ``stop``; ``_StreamBroken`` when it ends otherwise.

        Read in the caller's thread: an event costs no hand-off between threads. A guard thread waits
        on ``stop`` and shuts the stream down when it is set, which ends a blocked read at once, so an
        idle watch polls nothing. (A reader thread feeding a queue that each watch polled every 0.2 s
        cost two thread switches per event, and 5,000 wake-ups a second for 1,000 watches.)
        """
        with self._lock:
            self._watches.add(response)
        done = threading.Event()
        threading.Thread(target=_shut_on_stop, args=(response, stop, done), name="etcd-watch-stop",
                         daemon=True).start()
        try:
            lines = response.iter_lines(chunk_size=None)  # type: ignore[call-overload]  # as data arrives
            while True:
                try:
                    line = next(lines, None)
                except Exception as exc:  # the stream broke (or the guard shut it: stop)
                    if stop.is_set():
                        return
                    raise _StreamBroken(_short(exc)) from None
                if stop.is_set():
                    return
                if line is None:
                    raise _StreamBroken("the server closed the stream")
                if not line.strip():
                    continue
                try:
                    message = json.loads(line)
                except ValueError:
                    raise _StreamBroken(f"unreadable watch response: {line[:80]!r}") from None
                if "error" in message and "result" not in message:
                    error = message["error"]
                    text = _message(json.dumps(error)) if isinstance(error, dict) else str(error)
                    raise _StreamBroken(f"watch error: {text}")
                yield message.get("result") or {}
        finally:
            done.set()

    def _close_stream(self, response: requests.Response) -> None:
        with self._lock:
            self._watches.discard(response)
        raw = response.raw
        shutdown = getattr(raw, "shutdown", None)
        try:
            if shutdown is not None:
                shutdown()
        except Exception:  # already closed, or an urllib3 without shutdown()
            pass
        response.close()


class _StreamBroken(Exception):
    pass


def _shut_on_stop(response: requests.Response, stop: threading.Event, done: threading.Event) -> None:
    """Shut ``response``'s socket down once ``stop`` is set, unless its reader is ``done`` first."""
    while not done.is_set():
        if stop.wait(_GUARD_LINGER):
            shutdown = getattr(response.raw, "shutdown", None)  # urllib3 >= 2.3: ends a blocked read
            try:
                if shutdown is not None:
                    shutdown()
                else:
                    response.close()
            except Exception:  # already closed
                pass
            return


def _permanent(exc: BaseException) -> bool:
    """A failure that retrying the same endpoint cannot fix (TLS set up wrong)."""
    return permanent(_short(exc))


def _short(exc: BaseException) -> str:
    """The useful part of a client error ("connection refused", not urllib3's whole story)."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, _StreamBroken):
        return text
    detail = getattr(exc, "detail_text", None)
    if detail:
        text = _message(detail)
    return short_reason(text, type(exc).__name__)
