"""Worker processes: the executor forks its warm interpreter once per core, all accepting on one socket.

One interpreter runs Python on one core at a time (the GIL), so one
process caps the executor at what one core can do however many calls run
at once. ``serve_in_processes`` lifts that cap without changing what a
call is.

Contract:

- Called from the main thread after the imports (``startup.preload``), so
  every worker starts warm and shares the imported code copy-on-write.
  It forks ``processes`` workers; each runs its own ``daemon.Executor`` on
  the one listening socket, and the kernel gives each connection to
  exactly one of them. A call is accepted, run, answered and, when its
  caller never got the outcome, undone inside one process, with that
  process's namespace threads (``call.WorkerPool``): the exactly-once and
  undo rules of ``daemon`` and ``call`` hold per call as before. Limits
  (``max_workers``, ``max_connections``) are split between the workers.
- The supervisor (the process started as ``pycni executor``, whose pid
  the pid file holds) accepts nothing itself. It keeps the metrics when
  they are served (``metrics`` not None): each worker sends what it
  counts over a datagram socket (``MetricsRelay``) and ``/metrics``
  renders the sum. Unserved, nothing is relayed.
- A worker that dies (killed, a crash in a C extension) is logged
  (``worker_exited``) and replaced at once; the calls it was running end
  as when a whole executor dies: the shim sees the connection close after
  ``go`` and fails the call with code 11, undoing an ADD. Connections
  waiting in the socket's backlog are taken by the other workers.
- Workers die with the supervisor: each watches a pipe only the supervisor
  holds open and exits at once when it closes, so ``kill -9`` of the
  executor's pid still stops everything (no orphan keeps serving).
- SIGTERM/SIGINT are passed to the workers (each stops accepting and lets
  its running calls finish) and ``serve_in_processes`` returns once all
  have exited; SIGHUP is passed on too (each worker reopens the log).
  Whichever thread the kernel gives a signal to, the main thread wakes
  for it (``signal.set_wakeup_fd``): the supervisor waits on its wake pipe
  and the workers' pidfds, not in ``waitpid``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from pycni.executor.daemon import Executor, Options
from pycni.executor.logs import JsonLog
from pycni.executor.metrics import Metrics

__all__ = ["MetricsRelay", "default_processes", "serve_in_processes"]

#: A worker that dies sooner than this after its start is replaced only after a pause (no fork storm).
_MIN_LIFETIME = 1.0
_RESPAWN_PAUSE = 1.0
_HANDLED = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})


def default_processes() -> int:
    """One worker per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class MetricsRelay(Metrics):
    """A worker's metrics: every count goes to the supervisor's ``Metrics`` as one datagram."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock

    def _send(self, *message: Any) -> None:
        with contextlib.suppress(OSError):  # a metric lost is better than a call stalled
            self._sock.send(json.dumps(message).encode())

    def observe(self, plugin: str, command: str, seconds: float, error_code: int | None) -> None:
        self._send("observe", plugin, command, seconds, error_code)

    def refused(self, reason: str) -> None:
        self._send("refused", reason)

    def timed_out(self, plugin: str, command: str) -> None:
        self._send("timed_out", plugin, command)

    def adjust(self, *, in_flight: int = 0, abandoned_running: int = 0) -> None:
        self._send("adjust", in_flight, abandoned_running)


def _apply(metrics: Metrics, message: list[Any]) -> None:
    kind, *args = message
    if kind == "observe":
        metrics.observe(str(args[0]), str(args[1]), float(args[2]), args[3])
    elif kind == "refused":
        metrics.refused(str(args[0]))
    elif kind == "timed_out":
        metrics.timed_out(str(args[0]), str(args[1]))
    elif kind == "adjust":
        metrics.adjust(in_flight=int(args[0]), abandoned_running=int(args[1]))


def _collect(sock: socket.socket, metrics: Metrics) -> None:
    while True:
        try:
            data = sock.recv(65536)
        except OSError:
            return
        with contextlib.suppress(ValueError, TypeError, IndexError):
            _apply(metrics, json.loads(data))


class _Supervisor:
    def __init__(self, listener: socket.socket, options: Options, log: JsonLog, metrics: Metrics | None,
                 processes: int, not_inherited: list[socket.socket]) -> None:
        self.listener = listener
        self.not_inherited = not_inherited
        self.log = log
        self.processes = processes
        share = max(1, processes)
        self.worker_options = replace(options, max_workers=max(1, -(-options.max_workers // share)),
                                      max_connections=max(1, -(-options.max_connections // share)))
        # Relayed only when something serves them: three datagrams per call cost 0.25-0.3 ms of CPU.
        self.relay: tuple[socket.socket, socket.socket] | None = None
        if metrics is not None:
            self.relay = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.relay[1].settimeout(1.0)
            threading.Thread(target=_collect, args=(self.relay[0], metrics), name="pycni-metrics-relay",
                             daemon=True).start()
        self.lifeline_r, self.lifeline_w = os.pipe2(os.O_CLOEXEC)
        # The metrics relay's (or the metrics server's) thread may take a signal; the main thread, asleep
        # waiting for workers, wakes for its byte in this pipe (signal.set_wakeup_fd) and then handles it.
        self.wake_r, self.wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self.workers: dict[int, float] = {}  # pid -> start time
        self.pidfds: dict[int, int] = {}  # pid -> pidfd: readable once the worker has exited
        self.stopping = False

    # -- signals (main thread) ---------------------------------------------

    def _forward(self, signum: int, _frame: object = None) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self.stopping = True
        for pid in list(self.workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    # -- workers -------------------------------------------------------------

    def spawn(self) -> None:
        # Signals wait until the new worker has its own handlers: one that came before would run the
        # supervisor's forwarding in the worker and be lost there.
        signal.pthread_sigmask(signal.SIG_BLOCK, _HANDLED)
        try:
            pid = os.fork()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _HANDLED)
            raise
        if pid == 0:
            status = 1
            try:
                status = self._worker()
            finally:
                os._exit(status)
        self.workers[pid] = time.monotonic()
        self.pidfds[pid] = os.pidfd_open(pid)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _HANDLED)
        if self.stopping:  # SIGTERM came while forking: this one may have missed it
            os.kill(pid, signal.SIGTERM)
        self.log("worker_started", worker_pid=pid, workers=len(self.workers))

    def _worker(self) -> int:
        signal.set_wakeup_fd(-1)  # the supervisor's pipe; the worker's Executor sets its own
        self.workers.clear()
        for fd in (*self.pidfds.values(), self.wake_r, self.wake_w, self.lifeline_w):
            os.close(fd)
        self.pidfds.clear()
        metrics = Metrics()  # counted here, read by nobody: no server
        if self.relay is not None:
            self.relay[0].close()
            metrics = MetricsRelay(self.relay[1])
        for sock in self.not_inherited:
            sock.close()
        executor = Executor(self.listener, self.worker_options, self.log, metrics)
        threading.Thread(target=_die_with_supervisor, args=(self.lifeline_r,), name="pycni-lifeline",
                         daemon=True).start()
        signal.signal(signal.SIGTERM, lambda *_: executor.shutdown())
        signal.signal(signal.SIGINT, lambda *_: executor.shutdown())
        signal.signal(signal.SIGHUP, lambda *_: self.log.reopen())
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _HANDLED)
        executor.serve_forever()
        return 0

    def run(self, serving: Callable[[], None]) -> None:
        for signum in _HANDLED:
            signal.signal(signum, self._forward)
        earlier_wakeup = signal.set_wakeup_fd(self.wake_w)
        try:
            serving()  # before forking: what it closes (the daemon's ready pipe) must not live on in the workers
            for _ in range(self.processes):
                if not self.stopping:
                    self.spawn()
            while self.workers:
                for pid in self._wait_for_exits():
                    self._exited(pid)
        finally:
            signal.set_wakeup_fd(earlier_wakeup)

    def _wait_for_exits(self) -> list[int]:
        """Sleep until a worker exits or a signal comes (its handler runs once this returns); the exited pids."""
        try:
            ready, _, _ = select.select([self.wake_r, *self.pidfds.values()], [], [])
        except InterruptedError:
            return []
        if self.wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(self.wake_r, 4096)
        return [pid for pid, fd in self.pidfds.items() if fd in ready]

    def _exited(self, pid: int) -> None:
        os.close(self.pidfds.pop(pid))
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            status = 0
        started = self.workers.pop(pid)
        if not self.stopping:
            lived = time.monotonic() - started
            self.log("worker_exited", "error", worker_pid=pid, status=_describe(status), lived_s=round(lived, 3))
            if lived < _MIN_LIFETIME:
                time.sleep(_RESPAWN_PAUSE)
            if not self.stopping:
                self.spawn()

    def close(self) -> None:
        for fd in (*self.pidfds.values(), self.wake_r, self.wake_w, self.lifeline_w, self.lifeline_r):
            os.close(fd)
        self.pidfds.clear()
        for sock in self.relay or ():
            sock.close()


def _die_with_supervisor(lifeline: int) -> None:
    """Block until the supervisor's end of the pipe closes (it died: kill -9), then end this worker now."""
    while True:
        try:
            if not os.read(lifeline, 1):
                break
        except InterruptedError:
            continue
        except OSError as exc:
            if exc.errno != errno.EINTR:
                break
    os._exit(1)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit {os.waitstatus_to_exitcode(status)}"


def serve_in_processes(listener: socket.socket, options: Options, log: JsonLog, metrics: Metrics | None,
                       serving: Callable[[], None] = lambda: None,
                       not_inherited: list[socket.socket] | None = None) -> None:
    """Serve with ``options.processes`` workers until SIGTERM/SIGINT and every worker has ended.

    ``serving`` runs once the signals are handled, before the workers are forked (connections wait in
    the socket's backlog meanwhile);
    ``metrics``: where workers' counts go (None: nothing serves them, so nothing is relayed);
    ``not_inherited``: sockets of the supervisor's own (the metrics server's) that workers close.
    """
    supervisor = _Supervisor(listener, options, log, metrics, options.processes, not_inherited or [])
    try:
        supervisor.run(serving)
    finally:
        supervisor.close()
