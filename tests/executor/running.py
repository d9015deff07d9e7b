"""A real executor for tests: ``pycni executor`` as a subprocess on a private socket, stopped by its PID.

Used by tests/executor and by tests/integration's opt-in executor mode
(PYCNI_TEST_EXECUTOR=1). Sockets live in a short /tmp directory of their
own (unix socket paths are limited to 107 bytes).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RunningExecutor:
    proc: subprocess.Popen[bytes]
    directory: Path
    args: tuple[str, ...]

    @property
    def socket(self) -> Path:
        return self.directory / "executor.sock"

    @property
    def log(self) -> Path:
        return self.directory / "executor.log"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def env(self) -> dict[str, str]:
        return {"PYCNI_EXECUTOR_SOCKET": str(self.socket)}

    def events(self, event: str | None = None) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        lines = [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]
        return [e for e in lines if event is None or e["event"] == event]

    def wait_for(self, event: str, match: Callable[[dict[str, Any]], bool] = lambda e: True,
                 timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in self.events(event) if match(e)]
            if found:
                return found[-1]
            if not self.alive():
                raise AssertionError(f"executor exited ({self.proc.returncode}): {self.stderr()}")
            time.sleep(0.05)
        raise AssertionError(f"no {event!r} event within {timeout}s; log: {self.events()[-5:]}")

    def stderr(self) -> str:
        path = self.directory / "stderr"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)
        self.proc.wait(timeout=30)

    def stop(self, *, remove: bool = True) -> None:
        """SIGTERM (running calls finish), SIGKILL after 40 s; then remove the directory."""
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.kill()
        if remove:
            shutil.rmtree(self.directory, ignore_errors=True)


def die_with_parent() -> None:
    """``preexec_fn``: SIGTERM the child when the thread that started it ends.

    A test process that is killed (a CI timeout, kill -9 of a worker) runs no finalizer; without this its
    executor would serve on, unowned, for hours.
    """
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_executor(*args: str, directory: Path | None = None, timeout: float = 90) -> RunningExecutor:
    """Start an executor (on ``directory``'s socket, e.g. to restart one) and wait until it listens."""
    directory = directory or Path(tempfile.mkdtemp(prefix="pcx-", dir="/tmp"))
    with open(directory / "stderr", "ab") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pycni", "executor", "--socket", str(directory / "executor.sock"),
             "--log-file", str(directory / "executor.log"), *args],
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, cwd="/",
            preexec_fn=die_with_parent,
        )
    running = RunningExecutor(proc, directory, args)
    try:
        running.wait_for("listening", lambda e: e.get("pid") == proc.pid, timeout=timeout)
    except BaseException:
        running.stop(remove=False)
        raise
    return running
