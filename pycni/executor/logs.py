"""The executor's structured logs: one JSON object per line, to a file (appended) or a stream.

Every line has ``time`` (UTC, ms), ``level`` and ``event`` plus the event's
fields; ``reopen()`` (on SIGHUP) follows log rotation. Writing never raises.
A fork waits for any line being written, so a worker process (``workers``)
never starts with a log held by a thread it does not have; lines from
several processes sharing the file are appended whole.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import weakref
from typing import Any, TextIO

#: Every open log, so a fork (``workers``) never copies one in the middle of a write.
_open_logs: weakref.WeakSet[JsonLog] = weakref.WeakSet()


class JsonLog:
    """Structured logs: one JSON object per line, to a file (appended) or a stream."""

    def __init__(self, path: str | None = None, stream: TextIO | None = None) -> None:
        self._path = path
        self._stream = stream if stream is not None else sys.stderr
        self._file: TextIO | None = None
        self._lock = threading.Lock()
        _open_logs.add(self)
        self.reopen()

    def reopen(self) -> None:
        """Open the log file again (after rotation)."""
        if self._path is None:
            return
        directory = os.path.dirname(self._path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        new = open(self._path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115  # lives as long as the log
        with self._lock:
            old, self._file = self._file, new
        if old is not None:
            old.close()

    def __call__(self, event: str, level: str = "info", **fields: Any) -> None:
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
        line = json.dumps({"time": stamp, "level": level, "event": event, **fields}, default=str)
        with self._lock:
            out = self._file if self._file is not None else self._stream
            try:
                out.write(line + "\n")
                out.flush()
            except (OSError, ValueError):
                pass  # a full disk must not take the daemon down

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def _hold_all() -> None:
    for log in list(_open_logs):
        log._lock.acquire()


def _release_all() -> None:
    for log in list(_open_logs):
        log._lock.release()


os.register_at_fork(before=_hold_all, after_in_parent=_release_all, after_in_child=_release_all)
