"""One plugin call inside the executor, run by a worker thread that lives in the caller's netns.

Contract:

- ``WorkerPool.run(net_fd, job)`` runs ``job`` on a thread that has entered
  the network namespace ``net_fd`` refers to (setns, that thread only).
  Threads are kept per namespace and reused, each inside a
  ``netlink_session()``, so netlink (and nftables) handles stay warm from
  one call to the next; a thread idle for ``idle_timeout`` ends and closes
  them. A thread whose namespace changed, or whose call failed with an
  unexpected error, is not reused.
- ``Call`` owns the caller's netns descriptor and a worker slot until its
  job ends. The job runs ``skel.dispatch`` with the caller's environment
  and an own-netns check against the caller's namespace, keeps what the
  plugin prints (sys.stderr, and sys.stdout as skel.main sends it to
  stderr) for the caller's stderr (``OutputRouter``), and sets ``done``.
  On a namespace thread it then waits for ``settle(delivered)``. A caller
  in the namespace of the thread that took its connection (the runtime on
  the host, the usual case) needs no namespace thread: ``execute`` runs
  the job on that thread and ``conclude(delivered)`` follows, sparing two
  thread hand-offs per call. Either way an ADD that succeeded but whose
  outcome did not reach the caller (timeout, caller gone) is undone with a
  DEL of the same request. No exception escapes a job.
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import threading
from collections.abc import Callable, Iterator
from typing import TextIO

from pycni import skel
from pycni.executor import protocol
from pycni.executor.logs import JsonLog
from pycni.executor.outcome import error_code, failed
from pycni.net.netns import CLONE_NEWNET, netlink_session, setns
from pycni.plugins import load_plugin
from pycni.spec.errors import InternalError

#: A job gets the error of entering the namespace (None when it is in); it returns whether its thread may be reused.
Job = Callable[[BaseException | None], bool]

_local = threading.local()


class OutputRouter(io.TextIOBase):
    """sys.stderr / sys.stdout of the daemon: what a worker thread writes is kept for its caller's stderr."""

    def __init__(self, real: TextIO) -> None:
        self._real = real

    def write(self, text: str) -> int:
        captured: list[str] | None = getattr(_local, "stderr", None)
        if captured is not None:
            captured.append(text)
            return len(text)
        return self._real.write(text)

    def flush(self) -> None:
        if getattr(_local, "stderr", None) is None:
            self._real.flush()

    def fileno(self) -> int:
        return self._real.fileno()


@contextlib.contextmanager
def captured_stderr() -> Iterator[list[str]]:
    captured: list[str] = []
    _local.stderr = captured
    try:
        yield captured
    finally:
        _local.stderr = None


# --------------------------------------------------------------------------
# Threads that live in one namespace
# --------------------------------------------------------------------------


class WorkerPool:
    def __init__(self, idle_timeout: float = 60.0) -> None:
        self.idle_timeout = idle_timeout
        self._idle: dict[tuple[int, int], list[_Worker]] = {}
        self._lock = threading.Lock()

    def run(self, net_fd: int, job: Job) -> None:
        """Run ``job`` on a thread inside ``net_fd``'s namespace (the fd stays the caller's)."""
        st = os.fstat(net_fd)
        key = (st.st_dev, st.st_ino)
        with self._lock:
            idle = self._idle.get(key)
            worker = idle.pop() if idle else None
        if worker is None:
            worker = _Worker(self, key, os.dup(net_fd))
            try:
                worker.start()
            except BaseException:
                worker.close_fd()
                raise
        worker.inbox.put(job)

    def idle_count(self) -> int:
        with self._lock:
            return sum(len(workers) for workers in self._idle.values())

    def _park(self, worker: _Worker) -> None:
        with self._lock:
            self._idle.setdefault(worker.key, []).append(worker)

    def _retire(self, worker: _Worker) -> bool:
        """Take an idle worker out of the pool; False if a job was just handed to it."""
        with self._lock:
            idle = self._idle.get(worker.key, [])
            if worker not in idle:
                return False
            idle.remove(worker)
            if not idle:
                del self._idle[worker.key]
            return True


class _Worker(threading.Thread):
    def __init__(self, pool: WorkerPool, key: tuple[int, int], net_fd: int) -> None:
        super().__init__(name="pycni-worker", daemon=True)
        self.pool = pool
        self.key = key
        self.inbox: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self._net_fd = net_fd

    def close_fd(self) -> None:
        os.close(self._net_fd)

    def run(self) -> None:
        try:
            setns(self._net_fd, CLONE_NEWNET)
        except OSError as exc:
            self.inbox.get()(exc)
            return
        finally:
            self.close_fd()
        with netlink_session():
            while True:
                try:
                    job = self.inbox.get(timeout=self.pool.idle_timeout)
                except queue.Empty:
                    if self.pool._retire(self):
                        return
                    job = self.inbox.get()  # handed a job while timing out
                reusable = job(None)
                if not reusable or not self._still_in_namespace():
                    return
                self.pool._park(self)

    def _still_in_namespace(self) -> bool:
        try:
            st = os.stat("/proc/thread-self/ns/net")
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self.key


# --------------------------------------------------------------------------
# One call
# --------------------------------------------------------------------------


class Call:
    """One accepted request: its job, its outcome, and what happens when the caller never got it."""

    def __init__(self, request: protocol.Request, net_fd: int, release: Callable[[], None], log: JsonLog) -> None:
        self.request = request
        self.command = request.environ.get("CNI_COMMAND", "")
        self._net_fd = net_fd
        self._own = os.fstat(net_fd)
        self._release = release
        self._log = log
        self.outcome: skel.Outcome | None = None
        self.done = threading.Event()
        self._verdict = threading.Event()
        self._delivered = False

    def start(self, pool: WorkerPool) -> None:
        pool.run(self._net_fd, self._work)

    def caller_namespace_is_here(self) -> bool:
        """Whether the calling thread is in the caller's network namespace: then ``execute`` may run it here."""
        try:
            st = os.stat("/proc/thread-self/ns/net")
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == (self._own.st_dev, self._own.st_ino)

    def abort(self) -> None:
        """Give back the descriptor and the slot of a call that never started."""
        os.close(self._net_fd)
        self._release()

    def settle(self, delivered: bool) -> None:
        """Tell the worker whether its outcome reached the caller (call exactly once)."""
        self._delivered = delivered
        self._verdict.set()

    def execute(self) -> bool:
        """Run the job on this thread, already in the caller's namespace: ``outcome`` and ``done`` are set after.

        Returns whether the thread may serve again; ``conclude`` must follow.
        """
        return self._execute(None)

    def conclude(self, delivered: bool) -> None:
        """After ``execute``: undo an ADD whose outcome did not reach the caller; give back the fd and the slot."""
        try:
            self._undo_undelivered(delivered, None)
        finally:
            self._close()

    def _work(self, entering: BaseException | None) -> bool:
        try:
            healthy = self._execute(entering)
            self._verdict.wait()
            self._undo_undelivered(self._delivered, entering)
        finally:
            self._close()
        return healthy

    def _execute(self, entering: BaseException | None) -> bool:
        healthy = entering is None
        try:
            if entering is not None:
                raise entering
            self.outcome = self._dispatch(self.request.environ)
            healthy = error_code(self.outcome) != InternalError.code
        except BaseException as exc:  # setns failed, or a plugin raised SystemExit: never the daemon's problem
            healthy = False
            self.outcome = failed(self.request.plugin_type, self.request.environ, self.request.stdin,
                                  InternalError(f"executor: {exc or type(exc).__name__}"))
        self.done.set()
        return healthy

    def _undo_undelivered(self, delivered: bool, entering: BaseException | None) -> None:
        outcome = self.outcome
        if not delivered and self.command == "ADD" and outcome is not None and outcome.exit_code == 0 \
                and entering is None:
            self._undo()

    def _close(self) -> None:
        os.close(self._net_fd)
        self._release()

    def _dispatch(self, environ: dict[str, str]) -> skel.Outcome:
        plugin = load_plugin(self.request.plugin_type)
        with captured_stderr() as captured:
            outcome = skel.dispatch(plugin, environ, self.request.stdin, is_own_netns=self._is_own_netns)
        if captured:
            printed = "".join(captured).encode("utf-8", "backslashreplace")
            outcome = skel.Outcome(outcome.exit_code, outcome.stdout, printed + outcome.stderr)
        return outcome

    def _is_own_netns(self, path: str) -> bool:
        # The plugin's "own" namespace is its caller's, as it would be in-process.
        try:
            st = os.stat(path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == (self._own.st_dev, self._own.st_ino)

    def _undo(self) -> None:
        env = self.request.environ
        try:
            undo = self._dispatch({**env, "CNI_COMMAND": "DEL"})
        except BaseException as exc:
            self._log("undo_failed", "error", plugin=self.request.plugin_type,
                      container_id=env.get("CNI_CONTAINERID", ""), error=str(exc))
            return
        self._log("undone", "warning" if undo.exit_code == 0 else "error", plugin=self.request.plugin_type,
                  container_id=env.get("CNI_CONTAINERID", ""), ifname=env.get("CNI_IFNAME", ""),
                  exit_code=undo.exit_code, reason="ADD succeeded after its caller stopped waiting")
