"""The lab's side of the wireguard backend: each node's wireguard-go outlives its agent, so the lab stops it.

A lab node's agent runs wireguard-go detached (pycni.cluster.backends.
wireguard_supervisor), with its pid in ``<node dir>/run/wireguard/
wireguard-go.pid``. Deleting the node's namespace would not end it (the
process keeps its namespace alive), so ``down`` and ``node del`` call
``stop_wireguard``. Several lab nodes share one machine: each wireguard-go
has a private ``/run/wireguard`` (pycni.net.wireguard_go), so their control
sockets never collide although every node names its device ``pycni-wg``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from pycni.cluster.backends.wireguard import DEVICE
from pycni.cluster.backends.wireguard_supervisor import WireguardGo
from pycni.cluster.lab_state import LabState

__all__ = ["stop_wireguard", "supervisor"]


def supervisor(state: LabState, node: str) -> WireguardGo:
    return WireguardGo(DEVICE, os.path.join(state.node_dir(node), "run", "wireguard"))


def stop_wireguard(state: LabState, nodes: Iterable[str] | None = None) -> list[str]:
    """Stop the wireguard-go of each node (every node by default); returns what was stopped."""
    stopped = []
    for name in sorted(state.nodes if nodes is None else nodes):
        wg = supervisor(state, name)
        pid = wg.running_pid() or wg.recorded_pid()
        if pid is None:
            continue
        wg.stop()
        stopped.append(f"wireguard-go of {name} (pid {pid})")
    return stopped
