"""Deadlines for calls that run on their connection's own thread: whoever claims one first answers the caller.

A call handed to a namespace thread is timed by its connection thread,
which waits for it. A call run on the connection thread itself (its caller
is in the executor's namespace) has nobody waiting: the ``Watchdog``, one
thread per process, answers it when its deadline passes.

Contract: ``watch(seconds, on_expiry)`` returns a ``Deadline``. If it
expires before ``claim()`` is called on it, the watchdog claims it and runs
``on_expiry()`` while holding it (so nobody else touches the caller's
connection meanwhile), and a later ``claim()`` returns False. ``claim()``
before that returns True and the watchdog forgets it. The watchdog thread
is started with the first deadline and sleeps until the earliest pending
one: a call that ends in time costs it no wake-up.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable

__all__ = ["Deadline", "Watchdog"]


class Deadline:
    __slots__ = ("_claimed", "_lock", "expires", "on_expiry")

    def __init__(self, expires: float, on_expiry: Callable[[], None]) -> None:
        self.expires = expires
        self.on_expiry = on_expiry
        self._lock = threading.Lock()
        self._claimed = False

    def claim(self) -> bool:
        """True for the first to claim; waits while the watchdog answers an expired call."""
        with self._lock:
            if self._claimed:
                return False
            self._claimed = True
            return True

    def _expire(self) -> None:
        with self._lock:
            if self._claimed:
                return
            self._claimed = True
            self.on_expiry()


class Watchdog:
    def __init__(self, name: str = "pycni-watchdog") -> None:
        self._name = name
        self._wake = threading.Condition()
        self._pending: set[Deadline] = set()
        self._thread: threading.Thread | None = None
        self._asleep_until = 0.0  # what the watchdog sleeps until (inf: no deadline); 0 while it looks

    def watch(self, seconds: float, on_expiry: Callable[[], None]) -> Deadline:
        deadline = Deadline(time.monotonic() + seconds, on_expiry)
        with self._wake:
            self._pending.add(deadline)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            elif deadline.expires < self._asleep_until:  # else it wakes by an earlier one and looks again then
                self._wake.notify()
        return deadline

    def claim(self, deadline: Deadline) -> bool:
        """``deadline.claim()``, and the watchdog forgets it."""
        with self._wake:
            self._pending.discard(deadline)
        return deadline.claim()

    def _run(self) -> None:
        while True:
            with self._wake:
                now = time.monotonic()
                expired = [d for d in self._pending if d.expires <= now]
                self._pending.difference_update(expired)
                if not expired:
                    self._asleep_until = min((d.expires for d in self._pending), default=math.inf)
                    self._wake.wait(None if self._asleep_until == math.inf else self._asleep_until - now)
                    self._asleep_until = 0.0
                    continue
            for deadline in expired:
                with contextlib.suppress(Exception):  # on_expiry reports its own failures; the watchdog lives on
                    deadline._expire()
