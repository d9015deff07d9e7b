"""Nodes as ``pycni node list`` and ``pycni cluster show`` report them. Pure.

A node is known by its live lease, or, once that is gone, by the history
of the subnet it held last: ``up`` (lease live), ``expired`` (its subnet
is quarantined, then free) or ``removed`` (released by ``pycni node
remove``). ``node_rows`` makes one row per node from the subnet states of
``SubnetManager.subnet_states()``; ``format_table`` lays rows out in
columns; the ``describe_*`` helpers turn times into "in 25s" / "3m ago".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pycni.cluster.config import AnyNetwork
from pycni.cluster.lease import SubnetState

__all__ = ["NodeRow", "describe_in", "format_table", "node_rows"]


@dataclass(frozen=True)
class NodeRow:
    name: str
    subnet: AnyNetwork
    public_ip: str
    backend: str
    state: Literal["up", "expired", "removed"]
    expires_at: float | None  # up: when the lease ends unless renewed
    ended_at: float | None  # expired/removed: when it was noticed or done
    free_at: float | None  # expired: when others may take the subnet (None: expiry not stamped yet)
    backend_data: Mapping[str, Any] = field(default_factory=dict, compare=False)  # up: what the lease publishes

    def status(self, now: float) -> str:
        if self.state == "up":
            return f"up, lease ends {describe_in(self.expires_at, now)} unless renewed"
        if self.state == "removed":
            return f"removed {describe_in(self.ended_at, now)}; subnet free"
        if self.free_at is None:
            return "expired just now; subnet quarantined"
        ended = describe_in(self.ended_at, now)
        if self.free_at > now:
            return f"expired {ended}; subnet quarantined, free {describe_in(self.free_at, now)}"
        return f"expired {ended}; subnet free (the node gets it back if still free)"


def node_rows(states: Sequence[SubnetState]) -> list[NodeRow]:
    """One row per node: its live lease, else the latest history naming it."""
    live: dict[str, NodeRow] = {}
    past: dict[str, tuple[float, NodeRow]] = {}
    for state in states:
        lease, hist = state.lease, state.history
        if state.status == "leased":
            if lease is not None:
                live.setdefault(lease.node, NodeRow(lease.node, lease.subnet, str(lease.public_ip),
                                                    lease.backend_type, "up", lease.expires_at, None, None,
                                                    dict(lease.backend_data)))
            continue
        if hist is None:
            continue
        row = NodeRow(hist.node, state.subnet, hist.public_ip, "", "removed" if hist.released else "expired",
                      None, hist.expired_at, state.free_at)
        when = hist.acquired_at or 0.0
        if hist.node not in past or past[hist.node][0] < when:
            past[hist.node] = (when, row)
    rows = list(live.values()) + [row for name, (_, row) in past.items() if name not in live]
    return sorted(rows, key=lambda row: (row.state != "up", row.name))


def describe_in(when: float | None, now: float) -> str:
    """``in 25s``, ``3m10s ago``, ``now``; ``-`` when unknown."""
    if when is None:
        return "-"
    delta = when - now
    if abs(delta) < 0.5:
        return "now"
    text = _duration(abs(delta))
    return f"in {text}" if delta > 0 else f"{text} ago"


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s" if secs else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    return f"{hours // 24}d{hours % 24}h"


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart (the last column is not padded)."""
    table = [list(header), *[list(row) for row in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = []
    for row in table:
        cells = [cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
