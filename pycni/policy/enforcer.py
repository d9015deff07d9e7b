"""Keep the kernel's table equal to the compiled one, changing only what changed.

Contract: ``Enforcer(apply)`` is given the one function that runs an nft
script as an atomic transaction (``pycni.net`` nft apply, in the node's
namespace). It remembers the last ruleset committed, so it never lists
the kernel on the hot path:

- the first ``enforce`` (and every ``resync``) replaces the whole table in
  one transaction (add, delete and re-add: no moment without the table);
- later calls apply ``render_diff(committed, desired)``, nothing when equal;
  when the difference is only elements of plain sets (a label changed, a
  pod came or went) and an ``apply_elements`` was given, it writes them
  with that instead (nfnetlink, no libnftables cache of the whole
  ruleset: ``pycni.net.firewall.nft_sets``), and falls back to the
  script if that fails;
- when a partial transaction fails (someone changed the table under us),
  the same call falls back to a full replacement; when that fails too the
  error propagates and the kernel keeps what it had (transactions are
  atomic), which is the last state this enforcer committed: never
  allow-all, never deny-all.

Not thread-safe: the agent calls it from one thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pycni.policy.nftdiff import ElementChange, count_changes, element_changes, render_diff, render_full
from pycni.policy.ruleset import Ruleset

__all__ = ["ApplyElements", "Enforcer", "SyncStats"]

ApplyElements = Callable[[list[ElementChange]], None]

log = logging.getLogger("pycni.policy")


@dataclass(frozen=True)
class SyncStats:
    kind: Literal["full", "partial", "none"]
    commands: int
    seconds: float
    recovered: bool = False  # a partial transaction failed and a full one replaced it


class Enforcer:
    def __init__(self, apply: Callable[[str], None], clock: Callable[[], float] = time.monotonic,
                 apply_elements: ApplyElements | None = None) -> None:
        self._apply = apply
        self._apply_elements = apply_elements
        self._clock = clock
        self.committed: Ruleset | None = None

    def enforce(self, desired: Ruleset) -> SyncStats:
        if self.committed is None:
            return self.resync(desired)
        start = self._clock()
        if self._apply_elements is not None:
            changes = element_changes(self.committed, desired)
            if changes == []:
                return SyncStats("none", 0, self._clock() - start)
            if changes is not None:
                try:
                    self._apply_elements(changes)
                except Exception as exc:  # the script path below says why in nft's words, or works
                    log.info("element batch refused (%s); writing the difference as nft script", exc)
                else:
                    self.committed = desired
                    return SyncStats("partial", sum(len(gone) + len(came) for _, gone, came in changes),
                                     self._clock() - start)
        script = render_diff(self.committed, desired)
        if not script:
            return SyncStats("none", 0, self._clock() - start)
        try:
            self._apply(script)
        except Exception:
            stats = self.resync(desired)
            return SyncStats("full", stats.commands, self._clock() - start, recovered=True)
        self.committed = desired
        return SyncStats("partial", count_changes(script), self._clock() - start)

    def resync(self, desired: Ruleset) -> SyncStats:
        start = self._clock()
        script = render_full(desired)
        self._apply(script)
        self.committed = desired
        return SyncStats("full", count_changes(script), self._clock() - start)
