"""``pycni executor``: the warm daemon that runs plugin calls for the shims.

Contract:

- One unix stream socket (default /run/pycni/executor.sock, mode 0600, or
  the socket systemd passes); one connection per call (``protocol``).
  Peers that are not root (SO_PEERCRED) are refused. Modules (pyroute2,
  every plugin) are imported once at start-up.
- Each call runs on a thread in the *caller's* network namespace: the
  connection's own thread when the caller is in the executor's namespace
  (the runtime on the host), else a worker thread that has entered it (the
  descriptor the shim sent; threads are reused per namespace, keeping
  netlink and nftables handles warm), so host-side objects
  land where the runtime lives, not where the daemon does; a plugin then
  enters the container's namespace itself, exactly as in-process. The
  plugin sees the caller's environment via ``CmdArgs.environ``, and so
  does any delegate it execs (an IPAM binary gets the caller's PATH and
  CNI_PATH, none of the daemon's variables: ``ipam.delegate``); the
  daemon's own environment, cwd and streams are never changed per call.
  The executor takes a call only if the caller's files are its files: the
  same ``/`` (so a host-local dataDir or the CNI cache are the same
  directories), the same CNI_NETNS file, and for plugins that read
  netns-dependent sysfs (host-device), the same ``/sys``. A caller in a
  node namespace entered with ``ip netns exec`` (its own mount namespace,
  same root) is served; one in a container with another root is declined
  and its shim runs the plugin in-process.
- Limits: at most ``max_workers`` calls run at once (more wait up to
  ``admission_timeout``, then are declined and run in-process by their
  shim); a request must arrive within ``io_timeout``; a call that outlives
  ``request_timeout`` is answered with code 11 (by the ``watchdog`` when it
  runs on its connection's thread) and its thread is abandoned (it keeps
  its slot until it ends). An ADD whose outcome never reached
  its caller (timeout, or the caller went away) is undone with a DEL of
  the same request once it finishes, so nothing is left half-made.
- Nothing a plugin does kills the daemon: exceptions become error outcomes
  (skel's code 999), and a malformed or stalled connection only costs its
  own thread.
- Logs are JSON lines (``JsonLog``); ``metrics`` counts calls, latency and
  errors. ``shutdown()`` stops accepting and lets running calls finish.

Starting one (socket, systemd activation, preloading, signals) is
``startup``'s job.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import queue
import select
import signal
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass

from pycni import skel
from pycni.executor import protocol
from pycni.executor.call import Call, OutputRouter, WorkerPool
from pycni.executor.logs import JsonLog
from pycni.executor.metrics import Metrics
from pycni.executor.outcome import error_code, failed
from pycni.executor.watchdog import Watchdog
from pycni.net.netns import CLONE_NEWNET, NS_GET_NSTYPE, netlink_session
from pycni.plugins import PLUGIN_MODULES, import_plugin
from pycni.spec.errors import TryAgainLater

__all__ = ["DEFAULT_SOCKET", "SYSFS_READERS", "Executor", "Options"]

DEFAULT_SOCKET = protocol.DEFAULT_SOCKET
#: How long an idle connection thread waits for the next connection before it ends.
_HANDLER_IDLE = 30.0
_SHUTDOWN = b"x"  # what shutdown() writes to the wake pipe; signal numbers (1-64) are other bytes
#: Plugins reading /sys/class/net-style entries, which show the netns of whoever mounted /sys.
SYSFS_READERS = frozenset({"host-device"})


@dataclass(frozen=True)
class Options:
    socket_path: str = DEFAULT_SOCKET
    request_timeout: float = 60.0  # a call's whole run, then code 11
    io_timeout: float = 5.0  # to receive a whole request, and the shim's "go"
    max_workers: int = 32  # calls running at once
    admission_timeout: float = 5.0  # how long a call waits for a free worker before being declined
    max_connections: int = 512  # connections being read or waiting; more are declined at once
    shutdown_grace: float = 30.0  # how long SIGTERM waits for running calls
    processes: int = 1  # worker processes accepting on the socket (``workers``); limits above are split


# --------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------


class _Refused(Exception):
    def __init__(self, reason: str, detail: str, *, answer: bool = True) -> None:
        super().__init__(detail)
        self.reason = reason  # metric label
        self.answer = answer  # send a decline (False: just close)


class Executor:
    """Accepts connections on ``listener`` and runs their calls until ``shutdown()``."""

    def __init__(self, listener: socket.socket, options: Options, log: JsonLog, metrics: Metrics | None = None) -> None:
        self.listener = listener
        self.options = options
        self.log = log
        self.metrics = metrics or Metrics()
        self._workers = threading.BoundedSemaphore(options.max_workers)
        self._pool = WorkerPool()
        self._connections = threading.BoundedSemaphore(options.max_connections)
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        # EPOLLEXCLUSIVE: with worker processes all waiting on this socket, a connection wakes one of them.
        self._poller = select.epoll()
        self._poller.register(listener.fileno(), select.EPOLLIN | select.EPOLLEXCLUSIVE)
        self._poller.register(self._wake_r, select.EPOLLIN)
        self._active = 0
        self._idle = threading.Condition()
        # Connection threads are reused: starting one costs a thread's creation and a hand-off of the GIL.
        self._handoff: queue.SimpleQueue[socket.socket] = queue.SimpleQueue()
        self._waiting_handlers = 0  # handlers waiting for a connection that none has been promised yet
        self._handlers_lock = threading.Lock()
        self._watchdog = Watchdog()  # times the calls that run on their connection's thread

    # -- lifecycle ---------------------------------------------------------

    def serve_forever(self) -> None:
        self.listener.setblocking(False)
        real_stderr, real_stdout = sys.stderr, sys.stdout
        sys.stderr, sys.stdout = OutputRouter(real_stderr), OutputRouter(real_stdout)
        # Any thread may take a signal the process is sent (an idle connection thread, a plugin's), and
        # the main thread, asleep in epoll, would not wake for it: the signal's byte in the wake pipe wakes it.
        in_main = threading.current_thread() is threading.main_thread()
        earlier_wakeup = signal.set_wakeup_fd(self._wake_w) if in_main else -1
        try:
            self._accept_loop()
        finally:
            if in_main:
                signal.set_wakeup_fd(earlier_wakeup)
            self._wait_idle(self.options.shutdown_grace)
            sys.stderr, sys.stdout = real_stderr, real_stdout
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._poller.close()

    def shutdown(self) -> None:
        """Stop accepting (safe from a signal handler or another thread)."""
        with contextlib.suppress(OSError):
            os.write(self._wake_w, _SHUTDOWN)

    def _woken_to_stop(self) -> bool:
        """Drain the wake pipe: ``shutdown()`` wrote b"x"; a signal's number alone means its handler runs next."""
        try:
            return _SHUTDOWN in os.read(self._wake_r, 4096)
        except BlockingIOError:
            return False

    def _accept_loop(self) -> None:
        while True:
            try:
                ready = [fd for fd, _ in self._poller.poll()]
            except InterruptedError:
                continue
            if self._wake_r in ready and self._woken_to_stop():
                return
            try:
                conn, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as exc:
                self.log("accept_failed", "error", error=str(exc))
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    time.sleep(0.1)
                continue
            if not self._connections.acquire(blocking=False):
                self._refuse(conn, _Refused("busy", "too many connections"))
                conn.close()
                continue
            with self._idle:
                self._active += 1
            self._dispatch(conn)

    def _dispatch(self, conn: socket.socket) -> None:
        """Hand ``conn`` to a waiting connection thread, or start one."""
        with self._handlers_lock:
            if self._waiting_handlers:
                self._waiting_handlers -= 1
                self._handoff.put(conn)
                return
        threading.Thread(target=self._handler, args=(conn,), name="pycni-conn", daemon=True).start()

    def _handler(self, conn: socket.socket) -> None:
        """Serve ``conn``, then the connections handed over, until none comes for ``_HANDLER_IDLE`` seconds.

        Calls from this thread's namespace run on it, so it keeps netlink handles warm as a namespace thread does;
        a call that failed unexpectedly or moved it to another namespace ends it.
        """
        with netlink_session():
            self._serve_handed_over(conn)

    def _serve_handed_over(self, conn: socket.socket) -> None:
        while True:
            if not self._connection(conn):
                return
            with self._handlers_lock:
                self._waiting_handlers += 1
            try:
                conn = self._handoff.get(timeout=_HANDLER_IDLE)
            except queue.Empty:
                with self._handlers_lock:
                    if self._waiting_handlers:  # more handlers wait than connections were promised: leave
                        self._waiting_handlers -= 1
                        return
                conn = self._handoff.get()  # one was promised to the waiting handlers as this wait ended

    def _wait_idle(self, grace: float) -> None:
        deadline = time.monotonic() + grace
        with self._idle:
            while self._active and (left := deadline - time.monotonic()) > 0:
                self._idle.wait(left)

    # -- one connection ----------------------------------------------------

    def _connection(self, conn: socket.socket) -> bool:
        """Serve one connection; whether this thread may serve another."""
        fds: list[int] = []
        peer_pid = 0
        reusable = True
        try:
            peer_pid, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
            if uid != 0:
                raise _Refused("not_root", f"peer uid {uid} is not root")
            request = self._receive(conn, fds)
            reusable = self._serve(conn, request, fds, peer_pid)
        except _Refused as refused:
            self._refuse(conn, refused, peer_pid)
        except Exception as exc:  # a bug here must cost one connection, not the daemon
            self.log("connection_failed", "error", peer_pid=peer_pid, error=repr(exc))
        finally:
            for fd in fds:
                os.close(fd)
            conn.close()
            self._connections.release()
            with self._idle:
                self._active -= 1
                self._idle.notify_all()
        return reusable

    def _receive(self, conn: socket.socket, fds: list[int]) -> protocol.Request:
        """Read one whole request (and its descriptors, into ``fds``) within io_timeout."""
        deadline = time.monotonic() + self.options.io_timeout
        buf = bytearray()
        need = protocol.HEADER_SIZE
        header = b""
        try:
            while len(buf) < need:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _Refused("timeout", "request not received in time")
                conn.settimeout(left)
                data, ancdata, flags, _ = conn.recvmsg(min(need - len(buf), 1 << 20), socket.CMSG_SPACE(4 * 4))
                for level, kind, cdata in ancdata:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                        usable = len(cdata) - len(cdata) % 4
                        fds.extend(int.from_bytes(cdata[i : i + 4], sys.byteorder) for i in range(0, usable, 4))
                if flags & socket.MSG_CTRUNC or len(fds) > 4:
                    raise _Refused("malformed", "too many descriptors")
                if not data:
                    raise _Refused("malformed", "connection closed mid-request", answer=False)
                buf += data
                if not header and len(buf) >= protocol.HEADER_SIZE:
                    header = bytes(buf[: protocol.HEADER_SIZE])
                    need = protocol.HEADER_SIZE + protocol.body_size(header)
            return protocol.decode_request(header, bytes(buf[protocol.HEADER_SIZE :]))
        except TimeoutError:
            raise _Refused("timeout", "request not received in time") from None
        except protocol.ProtocolError as exc:
            raise _Refused("malformed", f"malformed request: {exc}") from None
        except OSError as exc:
            raise _Refused("malformed", f"failed to read request: {exc}", answer=False) from None

    def _check_caller(self, request: protocol.Request, fds: list[int]) -> None:
        """Decline a call the executor cannot run exactly as the caller would (see the module contract)."""
        if len(fds) not in (3, 4):
            raise _Refused("malformed", f"expected 3 or 4 descriptors, got {len(fds)}")
        net_fd, root_fd, sys_fd, *netns_fd = fds
        try:
            is_netns = fcntl.ioctl(net_fd, NS_GET_NSTYPE) == CLONE_NEWNET
        except OSError:
            is_netns = False
        if not is_netns:
            raise _Refused("malformed", "the first descriptor is not a network namespace")
        if not _same_file(root_fd, "/"):
            raise _Refused("foreign_root", "caller has another root filesystem")
        if request.plugin_type in SYSFS_READERS and not _same_file(sys_fd, "/sys"):
            raise _Refused("foreign_sysfs", "caller sees another /sys")
        netns = request.environ.get("CNI_NETNS", "")
        if netns_fd and not netns:
            raise _Refused("malformed", "a CNI_NETNS descriptor without CNI_NETNS")
        if netns and not _same_file(netns_fd[0] if netns_fd else None, netns):
            raise _Refused("foreign_netns_path", f"CNI_NETNS {netns!r} is another file here")
        if request.plugin_type not in PLUGIN_MODULES:
            raise _Refused("unknown_plugin", f"no plugin of type {request.plugin_type!r}")
        try:
            import_plugin(request.plugin_type)
        except Exception as exc:
            raise _Refused("unknown_plugin", f"plugin {request.plugin_type!r} does not load: {exc}") from None

    def _serve(self, conn: socket.socket, request: protocol.Request, fds: list[int], peer_pid: int) -> bool:
        self._check_caller(request, fds)
        if not self._workers.acquire(timeout=self.options.admission_timeout):
            raise _Refused("busy", "all workers busy")
        net_fd = fds.pop(0)  # from here on the call owns it
        call = Call(request, net_fd, self._workers.release, self.log)
        try:
            conn.settimeout(self.options.io_timeout)
            conn.sendall(protocol.READY)
            go = conn.recv(1)
        except OSError:
            go = b""
        if go != protocol.GO:
            os.close(net_fd)
            self._workers.release()
            raise _Refused("no_go", "caller did not confirm the call", answer=False)
        return self._run(conn, call, peer_pid)

    def _run(self, conn: socket.socket, call: Call, peer_pid: int) -> bool:
        """Run the call and answer it; whether this thread may serve another connection."""
        started = time.monotonic()
        self.metrics.adjust(in_flight=1)
        if call.caller_namespace_is_here():
            return self._run_here(conn, call, peer_pid, started)
        self._run_on_worker(conn, call, peer_pid, started)
        return True

    def _run_here(self, conn: socket.socket, call: Call, peer_pid: int, started: float) -> bool:
        """On this thread, which is in the caller's namespace: the watchdog answers if it takes too long."""
        deadline = self._watchdog.watch(self.options.request_timeout,
                                        lambda: self._answer_timed_out(conn, call, peer_pid, started))
        healthy = call.execute()
        delivered = False
        try:
            if self._watchdog.claim(deadline):
                self.metrics.adjust(in_flight=-1)
                assert call.outcome is not None  # execute sets it
                delivered = self._answer(conn, call, call.outcome, peer_pid, started, timed_out=False)
            else:  # the caller was answered with code 11 meanwhile
                self.metrics.adjust(abandoned_running=-1)
        finally:
            call.conclude(delivered)
        return healthy and call.caller_namespace_is_here()  # a plugin that moved the thread: retire it

    def _answer_timed_out(self, conn: socket.socket, call: Call, peer_pid: int, started: float) -> None:
        """The watchdog's answer to a call still running on its connection thread."""
        self.metrics.adjust(in_flight=-1)
        self.metrics.timed_out(call.request.plugin_type, call.command)
        self.metrics.adjust(abandoned_running=1)
        self._answer(conn, call, self._timeout_outcome(call), peer_pid, started, timed_out=True)

    def _timeout_outcome(self, call: Call) -> skel.Outcome:
        request = call.request
        timeout = TryAgainLater(f"pycni executor: {request.plugin_type} {call.command} did not finish "
                                f"within {self.options.request_timeout:g}s")
        return failed(request.plugin_type, request.environ, request.stdin, timeout)

    def _run_on_worker(self, conn: socket.socket, call: Call, peer_pid: int, started: float) -> None:
        """On a thread inside the caller's namespace (``WorkerPool``), waited for here up to the request timeout."""
        request = call.request
        try:
            call.start(self._pool)
        except RuntimeError as exc:  # no thread to be had: fail the call, keep serving
            call.abort()
            call.outcome = failed(request.plugin_type, request.environ, request.stdin,
                                  TryAgainLater(f"pycni executor: cannot start a worker: {exc}"))
            call.done.set()
        finished = call.done.wait(self.options.request_timeout)
        self.metrics.adjust(in_flight=-1)
        if finished and call.outcome is not None:
            outcome = call.outcome
        else:
            outcome = self._timeout_outcome(call)
            self.metrics.timed_out(request.plugin_type, call.command)
            self.metrics.adjust(abandoned_running=1)
            call.settle(False)
            threading.Thread(target=self._count_abandoned_end, args=(call,), daemon=True).start()
        delivered = self._answer(conn, call, outcome, peer_pid, started, timed_out=not finished)
        if finished:
            call.settle(delivered)

    def _answer(self, conn: socket.socket, call: Call, outcome: skel.Outcome, peer_pid: int, started: float, *,
                timed_out: bool) -> bool:
        """Send ``outcome`` to the caller, count and log the call; whether it reached the caller."""
        delivered = True
        try:
            conn.settimeout(self.options.io_timeout)
            conn.sendall(protocol.encode_outcome(outcome.exit_code, outcome.stdout, outcome.stderr))
        except OSError:
            delivered = False
        duration = time.monotonic() - started
        code = error_code(outcome)
        request = call.request
        self.metrics.observe(request.plugin_type, call.command, duration, code)
        env = request.environ
        self.log("call", "info" if outcome.exit_code == 0 else "warning", plugin=request.plugin_type,
                 command=call.command, container_id=env.get("CNI_CONTAINERID", ""), netns=env.get("CNI_NETNS", ""),
                 ifname=env.get("CNI_IFNAME", ""), peer_pid=peer_pid, exit_code=outcome.exit_code, error_code=code,
                 duration_ms=round(duration * 1000, 3), timed_out=timed_out, delivered=delivered)
        return delivered

    def _count_abandoned_end(self, call: Call) -> None:
        call.done.wait()
        self.metrics.adjust(abandoned_running=-1)

    def _refuse(self, conn: socket.socket, refused: _Refused, peer_pid: int = 0) -> None:
        self.metrics.refused(refused.reason)
        self.log("refused", "warning", reason=refused.reason, detail=str(refused), peer_pid=peer_pid)
        if refused.answer:
            with contextlib.suppress(OSError):
                conn.settimeout(0.5)
                conn.sendall(protocol.encode_decline(str(refused)))
                # Closing with unread input would reset the connection before the client reads why.
                conn.setblocking(False)
                for _ in range(64):
                    if not conn.recv(1 << 16):
                        break


def _same_file(fd: int | None, path: str) -> bool:
    """Whether the caller's ``fd`` (None: the caller could not open it) is what ``path`` names here."""
    try:
        here = os.stat(path)
    except OSError:
        return fd is None
    if fd is None:
        return False
    try:
        theirs = os.fstat(fd)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (theirs.st_dev, theirs.st_ino)
