"""Faults of a bgp lab node's bird: killed (``bird``), and one peer's session down (``peer-state`` on bgp).

bird is reached through its control socket (a path under the node's run
dir, usable from the host), as ``pycni node status`` reaches it. A killed
bird is healed by the agent, which starts it again (``-R``, graceful
restart recovery) on its first converge; a disabled session by enabling it.
"""

from __future__ import annotations

import os
import signal
import time
from ipaddress import IPv4Address

from pycni.cluster.backends.bgp_bird import BirdSupervisor
from pycni.cluster.backends.bgp_control import query
from pycni.cluster.backends.bgp_render import KINDS, session_name
from pycni.cluster.backends.bgp_status import bgp_peers, parse_protocols
from pycni.cluster.lab import LabError
from pycni.cluster.lab_bgp import node_bird
from pycni.cluster.lab_faults.target import Target, Undo

__all__ = ["disable_session", "enable_session", "kill_bird", "session_to"]


def _bird(t: Target) -> BirdSupervisor:
    return node_bird(t.state, t.node)


def kill_bird(t: Target) -> Undo:
    """bird dies (SIGKILL: no withdrawal); the routes it installed stay (``persist``), nothing refreshes them."""
    bird = _bird(t)
    pid = bird.pid()
    if pid is None:
        raise LabError(f"node {t.node} runs no bird")
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while bird.pid() is not None:
        if time.monotonic() > deadline:
            raise LabError(f"bird (pid {pid}) of {t.node} did not die")
        time.sleep(0.05)
    return {"pid": pid}


def session_to(t: Target, peer: str) -> str:
    """The name of this node's BGP session to node ``peer`` (as bgp_render names it)."""
    ip = IPv4Address(t.state.nodes[peer].ip)
    names = {s.name for s in bgp_peers(parse_protocols(query(_bird(t).paths.socket, "show protocols all")))}
    found = [session_name(kind, ip) for kind in KINDS if session_name(kind, ip) in names]
    if not found:
        raise LabError(f"{t.node}'s bird has no session to {peer} ({ip}): {', '.join(sorted(names))}")
    return found[0]


def disable_session(t: Target, peer: str) -> Undo:
    name = session_to(t, peer)
    query(_bird(t).paths.socket, f"disable {name}")
    return {"session": name}


def enable_session(t: Target, undo: Undo) -> None:
    if undo.get("session"):
        query(_bird(t).paths.socket, f"enable {undo['session']}")
