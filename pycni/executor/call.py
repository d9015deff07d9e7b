"""One plugin call inside the executor: a worker thread in the caller's network namespace.

Contract: ``Call`` owns the caller's netns descriptor and a worker slot
from ``start()`` until its worker ends. The worker enters the namespace
(setns, this thread only), runs ``skel.dispatch`` with the caller's
environment and an own-netns check against the caller's namespace, keeps
what the plugin writes to sys.stderr for the caller (``StderrRouter``), and
sets ``done``. It then waits for ``settle(delivered)``: an ADD that
succeeded but whose outcome did not reach the caller (timeout, caller gone)
is undone with a DEL of the same request. No exception escapes a worker.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
from collections.abc import Callable, Iterator
from typing import TextIO

from pycni import skel
from pycni.executor import protocol
from pycni.executor.logs import JsonLog
from pycni.executor.outcome import failed
from pycni.net.netns import CLONE_NEWNET, setns
from pycni.plugins import load_plugin
from pycni.spec.errors import InternalError

_local = threading.local()


class StderrRouter(io.TextIOBase):
    """sys.stderr for the daemon: text a worker thread writes is kept for its caller."""

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
# One call
# --------------------------------------------------------------------------


class Call:
    """One accepted request, run by a worker thread inside the caller's netns.

    The worker owns the namespace descriptor and the worker slot until it
    ends. After its outcome is ready it waits for the connection thread's
    verdict: delivered, or not (timeout, caller gone) — an ADD that
    succeeded but was not delivered is undone with a DEL.
    """

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

    def start(self) -> None:
        threading.Thread(target=self._work, name=f"pycni-call-{self.request.plugin_type}", daemon=True).start()

    def abort(self) -> None:
        """Give back the descriptor and the slot of a call whose worker never started."""
        os.close(self._net_fd)
        self._release()

    def settle(self, delivered: bool) -> None:
        """Tell the worker whether its outcome reached the caller (call exactly once)."""
        self._delivered = delivered
        self._verdict.set()

    def _work(self) -> None:
        try:
            try:
                self.outcome = self._dispatch(self.request.environ)
            except BaseException as exc:  # setns failed, or a plugin raised SystemExit: never the daemon's problem
                self.outcome = failed(self.request.plugin_type, self.request.environ, self.request.stdin,
                                      InternalError(f"executor: {exc or type(exc).__name__}"))
            self.done.set()
            self._verdict.wait()
            if not self._delivered and self.command == "ADD" and self.outcome.exit_code == 0:
                self._undo()
        finally:
            os.close(self._net_fd)
            self._release()

    def _dispatch(self, environ: dict[str, str]) -> skel.Outcome:
        setns(self._net_fd, CLONE_NEWNET)  # this thread only; it dies with the call
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
