"""The dhcp daemon: leases for pods, kept alive in threads, served to the plugin over a unix socket.

Contract:

- ``Leases.allocate`` answers ADD: the attachment's lease if it holds one
  (as the reference, a repeated ADD returns the same lease), else a new one
  acquired on the pod's interface, saved to the store and kept by a
  ``Keeper``. ``release`` answers DEL: it stops the keeper, sends DHCPRELEASE
  on the interface and forgets the lease, all before it answers, so the
  release reaches the server while the plugin's DEL still holds the
  interface. An interface already gone is logged, never a DEL failure.
  ``check`` fails with code 3 when the attachment holds no lease (the
  reference's CHECK acquires one instead). ``gc`` releases the network's
  leases of attachments not in the valid list (the reference has no GC). Calls for one attachment are
  serialised; different attachments run in parallel.
- ``Leases.resume`` starts a keeper for every lease in the store whose
  netns still exists (a restarted daemon keeps renewing its live pods) and
  forgets the others. ``shutdown`` stops the keepers and keeps the store.
- ``serve`` listens on the socket (refusing one another daemon answers on,
  replacing a stale one; or on the one systemd passed, socket activation as
  the reference), answers each connection in a thread, and on SIGTERM/SIGINT
  removes the socket (unless systemd's) and pid file and returns.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import FrameType
from typing import Any

from pycni.ipam.dhcp.client import DEFAULT_TIMING, DhcpError, Timing
from pycni.ipam.dhcp.conf import LeaseRequest, parse_lease_request
from pycni.ipam.dhcp.keeper import Keeper, LinkOpener, acquire_lease, release_lease
from pycni.ipam.dhcp.lease import Lease
from pycni.ipam.dhcp.link import LinkUnavailable, open_link
from pycni.ipam.dhcp.options import describe_client
from pycni.ipam.dhcp.rpc import read_message, write_message
from pycni.ipam.dhcp.store import LeaseStore
from pycni.spec.args import parse_cni_args
from pycni.spec.errors import CniError, InvalidConfig, TryAgainLater, UnknownContainer
from pycni.spec.result import IPConfig, Result

__all__ = ["DaemonOptions", "Leases", "serve"]

log = logging.getLogger("pycni.dhcp")


@dataclass(frozen=True)
class DaemonOptions:
    socket_path: str
    state_dir: str
    pidfile: str = ""
    host_prefix: str = ""  # prepended to netns paths and the socket (a daemon running in a container)
    broadcast: bool = False
    timing: Timing = DEFAULT_TIMING


def lease_result(lease: Lease) -> Result:
    g = lease.grant
    return Result("1.1.0", ips=(IPConfig(address=g.address, gateway=g.gateway),), routes=g.routes)


class Leases:
    """The daemon's leases, by client identifier."""

    def __init__(
        self,
        store: LeaseStore,
        *,
        broadcast: bool = False,
        timing: Timing = DEFAULT_TIMING,
        host_prefix: str = "",
        opener: LinkOpener = open_link,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._monotonic = monotonic
        self._broadcast = broadcast
        self._timing = timing
        self._host_prefix = host_prefix
        self._opener = opener
        self._clock = clock
        self._keepers: dict[bytes, Keeper] = {}
        self._lock = threading.Lock()
        self._attachment_locks: dict[bytes, threading.Lock] = {}

    def _attachment_lock(self, client_id: bytes) -> threading.Lock:
        with self._lock:
            return self._attachment_locks.setdefault(client_id, threading.Lock())

    def _request(self, call: dict[str, Any]) -> LeaseRequest:
        config = call.get("config")
        if not isinstance(config, dict):
            raise InvalidConfig("the request carries no network config")
        netns = str(call.get("netns", ""))
        args = dict(parse_cni_args(str(call.get("args", ""))))
        return parse_lease_request(
            config, str(call.get("containerID", "")), self._host_prefix + netns, str(call.get("ifName", "")), args
        )

    def _keeper(self, client_id: bytes) -> Keeper | None:
        with self._lock:
            keeper = self._keepers.get(client_id)
        if keeper is not None and keeper.ended.is_set():  # it gave the lease up (netns gone)
            return None
        return keeper

    def _keep(self, lease: Lease) -> None:
        keeper = Keeper(
            lease, self._store, timing=self._timing, opener=self._opener, clock=self._clock, monotonic=self._monotonic
        )
        with self._lock:
            self._keepers[lease.client_id] = keeper
        keeper.start()

    def allocate(self, call: dict[str, Any]) -> Result:
        request = self._request(call)
        with self._attachment_lock(request.client_id):
            keeper = self._keeper(request.client_id)
            if keeper is not None:
                return lease_result(keeper.lease)
            if not request.netns or not os.path.exists(request.netns):
                raise CniError(f"failed to acquire a DHCP lease: netns '{request.netns}' does not exist")
            log.info("%s: acquiring lease", describe_client(request.client_id))
            try:
                lease = acquire_lease(
                    request,
                    broadcast=self._broadcast,
                    timing=self._timing,
                    opener=self._opener,
                    clock=self._clock,
                    monotonic=self._monotonic,
                )
            except LinkUnavailable as exc:
                raise CniError(str(exc)) from exc
            except (DhcpError, OSError, ValueError) as exc:
                raise TryAgainLater(f"failed to acquire a DHCP lease on '{request.ifname}': {exc}") from exc
            self._store.save(lease)
            self._keep(lease)
            log.info("%s: lease %s acquired", describe_client(request.client_id), lease.grant.address)
            return lease_result(lease)

    def release(self, call: dict[str, Any]) -> None:
        self._release(self._request(call).client_id)

    def gc(self, call: dict[str, Any]) -> list[Lease]:
        """Release the network's leases whose (containerID, ifName) is not in ``call["valid"]``; those released."""
        config = call.get("config")
        network = config.get("name") if isinstance(config, dict) else None
        valid = call.get("valid")
        if not isinstance(network, str) or not isinstance(valid, list):
            raise InvalidConfig("gc needs the network config and its list of valid attachments")
        keep = {(str(pair[0]), str(pair[1])) for pair in valid if isinstance(pair, list) and len(pair) == 2}
        stale = [
            lease
            for lease in self.leases()
            if lease.network == network and (lease.container_id, lease.ifname) not in keep
        ]
        for lease in stale:
            self._release(lease.client_id)
        return stale

    def _release(self, client_id: bytes) -> None:
        with self._attachment_lock(client_id):
            with self._lock:
                keeper = self._keepers.pop(client_id, None)
            if keeper is None:
                return
            keeper.stop()
            lease = keeper.lease
            try:
                release_lease(lease, timing=self._timing, opener=self._opener)
                log.info("%s: lease %s released", keeper.name, lease.grant.address)
            except (LinkUnavailable, OSError) as exc:
                log.warning("%s: failed to release DHCP lease %s: %s", keeper.name, lease.grant.address, exc)
            self._store.remove(lease.client_id)

    def check(self, call: dict[str, Any]) -> None:
        request = self._request(call)
        if self._keeper(request.client_id) is None:
            raise UnknownContainer(f"the DHCP daemon holds no lease for '{describe_client(request.client_id)}'")

    def resume(self) -> int:
        """Keep every stored lease whose netns still exists; the number resumed."""
        resumed = 0
        for lease in self._store.load_all():
            if not os.path.exists(lease.netns):
                log.info("%s: netns %s is gone; forgetting its lease", describe_client(lease.client_id), lease.netns)
                self._store.remove(lease.client_id)
                continue
            self._keep(lease)
            resumed += 1
        return resumed

    def shutdown(self) -> None:
        with self._lock:
            keepers = list(self._keepers.values())
            self._keepers.clear()
        for keeper in keepers:
            keeper.stop()

    def leases(self) -> list[Lease]:
        with self._lock:
            return [k.lease for k in self._keepers.values() if not k.ended.is_set()]


def answer(leases: Leases, call: Any) -> dict[str, Any]:
    """The answer to one request (never raises)."""
    try:
        if not isinstance(call, dict):
            raise InvalidConfig("the request is not a JSON object")
        method = call.get("method")
        if method == "allocate":
            return {"result": leases.allocate(call).to_wire()}
        if method == "release":
            leases.release(call)
        elif method == "check":
            leases.check(call)
        elif method == "gc":
            leases.gc(call)
        elif method != "status":
            raise CniError(f"unknown method {method!r}")
        return {"result": {}}
    except CniError as exc:
        return {"error": exc.to_wire()}
    except Exception as exc:
        log.exception("request failed")
        return {"error": CniError(f"the DHCP daemon failed: {exc}").to_wire()}


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    leases: Leases


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        server: _Server = self.server  # type: ignore[assignment]
        try:
            call = read_message(sock)
        except (OSError, ValueError) as exc:
            log.warning("bad request: %s", exc)
            return
        try:
            write_message(sock, answer(server.leases, call))
        except OSError as exc:
            log.warning("the plugin went away before its answer: %s", exc)


def _claim_socket(path: str) -> None:
    """Make room for our socket at ``path``: OSError if a live daemon answers there."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    if not os.path.exists(path):
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)  # stale: nobody listens
        return
    finally:
        probe.close()
    raise OSError(f"another DHCP daemon is listening on '{path}'")


def inherited_listener(environ: Mapping[str, str], pid: int) -> socket.socket | None:
    """The listening socket systemd passed (socket activation: LISTEN_PID, LISTEN_FDS, fd 3), or None.

    OSError when it passed more than one: which one would be ours is unknown.
    """
    if environ.get("LISTEN_PID") != str(pid) or not environ.get("LISTEN_FDS"):
        return None
    count = int(environ["LISTEN_FDS"])
    if count == 0:
        return None
    if count > 1:
        raise OSError(f"too many ({count}) sockets passed through socket activation")
    return socket.socket(fileno=3)


def serve(options: DaemonOptions, ready: Callable[[], None] = lambda: None) -> None:
    """Run the daemon until SIGTERM or SIGINT."""
    socket_path = options.host_prefix + options.socket_path
    leases = Leases(
        LeaseStore(options.state_dir),
        broadcast=options.broadcast,
        timing=options.timing,
        host_prefix=options.host_prefix,
    )
    inherited = inherited_listener(os.environ, os.getpid())
    if inherited is None:
        _claim_socket(socket_path)
        server = _Server(socket_path, _Handler)
        os.chmod(socket_path, 0o600)
    else:  # systemd's socket: it made the path and removes it
        server = _Server(socket_path, _Handler, bind_and_activate=False)
        server.socket.close()
        server.socket = inherited
        socket_path = ""
    server.leases = leases
    resumed = leases.resume()  # once the socket is ours: a second daemon must not renew the first one's leases
    if options.pidfile:
        with open(options.pidfile, "w", encoding="ascii") as f:
            f.write(str(os.getpid()))

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    where = socket_path or "the socket systemd passed"
    log.info("listening on %s (%d leases resumed from %s)", where, resumed, options.state_dir)
    ready()
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.server_close()
        leases.shutdown()
        for path in (socket_path, options.pidfile):
            if path:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        log.info("stopped; leases kept in %s", options.state_dir)
