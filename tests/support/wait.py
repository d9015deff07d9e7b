"""Waiting for a condition in tests that drive real processes, threads or kernels."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["wait_until"]


def wait_until(predicate: Callable[[], object], timeout: float = 5.0, what: str = "the condition", *,
               step: float = 0.05) -> float:
    """Poll ``predicate`` every ``step`` s until it is true; the seconds it took. AssertionError after ``timeout``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start >= timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)
    return time.monotonic() - start
