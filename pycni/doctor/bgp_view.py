"""What doctor sees of the node's bird (pure data; ``collect_bgp`` fills it).

``sessions`` are bird's BGP protocols as ``pycni node status`` reads them
(``backends.bgp_status``); ``originated`` is what the node's ``pod_subnet``
protocol puts in bird's table; ``exported`` maps each Established
session's name to the prefixes bird exports to that peer. A route query bird
refuses while its sessions answer (``No valid tables`` while a restarted
bird recovers) is kept in ``refused``, not taken as bird being down.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network

from pycni.cluster.backends.bgp_status import BgpPeerStatus

__all__ = ["BirdView"]


@dataclass(frozen=True)
class BirdView:
    socket: str
    pid: int | None  # the live bird of the node's run dir (its pid file, its config path), None when none
    error: str | None  # why the control socket did not answer; None when it did
    sessions: tuple[BgpPeerStatus, ...] = ()
    originated: tuple[IPv4Network, ...] | None = ()  # None: bird refused to show them (see refused)
    exported: Mapping[str, tuple[IPv4Network, ...]] = field(default_factory=dict)
    refused: tuple[str, ...] = ()  # route queries bird refused, with its answer
