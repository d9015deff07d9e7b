"""Reachability tables: may a new connection pass, for every pod pair; what a change gains and loses.

Contract: pure, built on ``pycni.policy.evaluate``. ``reachability(snapshot,
port, protocol)`` answers for every ordered pair of (non-host-network) pods,
or for the ``pairs`` given; ``diff(before, after)`` lists the pairs known
in both whose answer changed (what ``apply --dry-run`` reports).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pycni.policy.evaluate import Snapshot, isolating, judge_quickly
from pycni.policy.model import Direction, NetworkPolicy, Pod, Protocol

__all__ = ["ReachabilityDiff", "diff", "reachability"]


def reachability(snapshot: Snapshot, port: int, protocol: Protocol,
                 pairs: Iterable[tuple[Pod, Pod]] | None = None) -> dict[tuple[str, str], bool]:
    """Every ordered pair of (non-host-network) pods, or only ``pairs``: may a new connection pass?"""
    pods = [pod for pod in snapshot.pods if not pod.host_network]
    memo: dict[tuple[str, Direction], list[NetworkPolicy]] = {}

    def isolation(pod: Pod, direction: Direction) -> list[NetworkPolicy]:
        key = (pod.key, direction)
        if key not in memo:
            memo[key] = isolating(snapshot, pod, direction)
        return memo[key]

    chosen = pairs if pairs is not None else ((src, dst) for src in pods for dst in pods)
    return {(src.key, dst.key): judge_quickly(snapshot, isolation, src, dst, port, protocol) for src, dst in chosen}


@dataclass(frozen=True)
class ReachabilityDiff:
    """Pairs known before and after that change: what ``apply --dry-run`` reports."""

    gained: tuple[tuple[str, str], ...] = field(default=())
    lost: tuple[tuple[str, str], ...] = field(default=())

    def __bool__(self) -> bool:
        return bool(self.gained or self.lost)


def diff(before: Mapping[tuple[str, str], bool], after: Mapping[tuple[str, str], bool]) -> ReachabilityDiff:
    """Pairs present in both tables whose answer changed; pairs only in one are not compared."""
    common = sorted(before.keys() & after.keys())
    gained = tuple(pair for pair in common if after[pair] and not before[pair])
    lost = tuple(pair for pair in common if before[pair] and not after[pair])
    return ReachabilityDiff(gained, lost)
