"""Retrying after datastore failures: the one backoff policy of the agent's loops.

Contract:

- ``Backoff(first, limit)`` is the delay before the next attempt: ``first``,
  doubled after every failure up to ``limit``, and ``first`` again after
  ``reset()`` (a success). ``Backoff(d, d)`` is a fixed delay.
- ``Backoff.wait(stop)`` sleeps the current delay, or less when ``stop`` (a
  ``threading.Event``) is set meanwhile, then doubles the delay; a stopping
  agent never sits out a backoff.
- ``retry_until_stopped(attempt, stop, backoff, on_error=...)`` calls
  ``attempt`` until it returns, and returns its value; after each failure
  (any ``Exception``) it calls ``on_error(exc, delay)`` and waits. It returns
  None once ``stop`` is set. Errors that must not be retried are the
  caller's to catch inside ``attempt``.

Users: ``agent._load_config`` (0.5 s doubling to 5 s), ``PeerWatcher.run``
(lists again after a fixed 1 s) and ``watch_loop.watch_leases`` (0.2 s
doubling to 5 s, back to 0.2 s after every event; it sorts the errors
itself, as only it knows which ones resume the watch).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

__all__ = ["Backoff", "retry_until_stopped"]

T = TypeVar("T")


class Backoff:
    def __init__(self, first: float, limit: float) -> None:
        if not 0 < first <= limit:
            raise ValueError(f"backoff: need 0 < first <= limit, got {first} and {limit}")
        self.first = first
        self.limit = limit
        self.delay = first  # the wait before the next attempt

    def reset(self) -> None:
        self.delay = self.first

    def wait(self, stop: threading.Event) -> None:
        stop.wait(self.delay)
        self.delay = min(self.delay * 2, self.limit)


def retry_until_stopped(attempt: Callable[[], T], stop: threading.Event, backoff: Backoff, *,
                        on_error: Callable[[Exception, float], None]) -> T | None:
    while not stop.is_set():
        try:
            return attempt()
        except Exception as exc:
            on_error(exc, backoff.delay)
            backoff.wait(stop)
    return None
