"""The watchdog answers a call that outlives its deadline, once, and costs a call that ends in time nothing."""

from __future__ import annotations

import threading
import time

from pycni.executor.watchdog import Watchdog


def test_a_deadline_claimed_in_time_never_expires() -> None:
    watchdog = Watchdog()
    fired: list[str] = []
    deadline = watchdog.watch(0.2, lambda: fired.append("late"))
    assert watchdog.claim(deadline)
    time.sleep(0.4)
    assert fired == []
    assert not deadline.claim()  # claimed once only


def test_an_expired_deadline_is_answered_once_and_a_late_claim_loses() -> None:
    watchdog = Watchdog()
    answered = threading.Event()
    deadline = watchdog.watch(0.1, answered.set)
    assert answered.wait(5)
    assert not watchdog.claim(deadline)


def test_a_claim_waits_while_the_watchdog_answers() -> None:
    # The connection thread must not close the caller's socket while the watchdog writes to it.
    watchdog = Watchdog()
    inside, release = threading.Event(), threading.Event()
    order: list[str] = []

    def slow_answer() -> None:
        inside.set()
        release.wait(5)
        order.append("answered")

    deadline = watchdog.watch(0.05, slow_answer)
    assert inside.wait(5)
    claimer = threading.Thread(target=lambda: order.append(f"claim {watchdog.claim(deadline)}"))
    claimer.start()
    time.sleep(0.1)
    assert order == []  # still waiting for the answer to be written
    release.set()
    claimer.join(5)
    assert order == ["answered", "claim False"]


def test_a_sooner_deadline_wakes_a_watchdog_asleep_until_a_later_one() -> None:
    watchdog = Watchdog()
    fired: list[str] = []
    watchdog.watch(30, lambda: fired.append("long"))
    time.sleep(0.05)  # asleep until the first deadline, 30 s away
    soon = threading.Event()
    started = time.monotonic()
    watchdog.watch(0.1, soon.set)
    assert soon.wait(5) and time.monotonic() - started < 2
    assert fired == []


def test_many_deadlines_each_expire_or_are_claimed() -> None:
    watchdog = Watchdog()
    fired: list[int] = []
    deadlines = [watchdog.watch(0.05 + (i % 3) * 0.02, lambda i=i: fired.append(i)) for i in range(30)]
    claimed = [i for i, d in enumerate(deadlines) if i % 2 == 0 and watchdog.claim(d)]
    time.sleep(0.5)
    assert sorted(fired + claimed) == list(range(30))
    assert set(fired).isdisjoint(claimed)
