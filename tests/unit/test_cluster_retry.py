"""The one backoff of the agent's loops: doubling up to a limit, reset, stop, retry until a value."""

from __future__ import annotations

import threading

import pytest

from pycni.cluster.retry import Backoff, retry_until_stopped


class RecordingStop(threading.Event):
    """A stop event that records the waits instead of sleeping them."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None
        self.waits.append(timeout)
        return self.is_set()


def test_backoff_doubles_up_to_the_limit_and_starts_over_after_reset() -> None:
    stop = RecordingStop()
    backoff = Backoff(0.2, 1.0)
    for _ in range(5):
        backoff.wait(stop)
    assert stop.waits == [0.2, 0.4, 0.8, 1.0, 1.0]
    backoff.reset()
    assert backoff.delay == 0.2


def test_a_fixed_backoff_and_a_bad_one() -> None:
    stop = RecordingStop()
    fixed = Backoff(1.0, 1.0)
    fixed.wait(stop)
    fixed.wait(stop)
    assert stop.waits == [1.0, 1.0]
    with pytest.raises(ValueError, match=r"first <= limit"):
        Backoff(2.0, 1.0)


def test_retry_until_stopped_reports_each_failure_then_returns_the_value() -> None:
    stop = RecordingStop()
    outcomes: list[Exception | str] = [OSError("down"), ValueError("no config"), "config"]
    reported: list[tuple[str, float]] = []

    def attempt() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    got = retry_until_stopped(attempt, stop, Backoff(0.5, 5.0),
                              on_error=lambda exc, delay: reported.append((str(exc), delay)))
    assert got == "config"
    assert reported == [("down", 0.5), ("no config", 1.0)]
    assert stop.waits == [0.5, 1.0]


def test_retry_until_stopped_gives_up_once_stopped() -> None:
    stop = RecordingStop()
    calls: list[int] = []

    def attempt() -> str:
        calls.append(1)
        stop.set()
        raise OSError("down")

    assert retry_until_stopped(attempt, stop, Backoff(0.5, 5.0), on_error=lambda exc, delay: None) is None
    assert calls == [1]
    assert retry_until_stopped(attempt, stop, Backoff(0.5, 5.0), on_error=lambda exc, delay: None) is None
    assert calls == [1]  # not even tried: already stopped
