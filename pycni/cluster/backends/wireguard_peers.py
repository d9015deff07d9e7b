"""From the device's state to the planned one (pure): the UAPI ``set`` lines that make the difference.

``device_changes(state, private_key, listen_port, peers)`` returns the lines
of one ``set=1`` request (empty when nothing differs) and the peers it adds
or changes. Only what differs is sent: re-setting an unchanged peer would be
harmless, but a request per resync for nothing is noise, and
``replace_peers`` is never used because it drops every live session. A peer
that is not planned (a node that left, or the old key of a node that
rotated) is removed by key; a changed peer gets ``replace_allowed_ips``
so no stale range lingers on it.
"""

from __future__ import annotations

from collections.abc import Iterable

from pycni.cluster.backends.wireguard_plan import WgPeer
from pycni.net.wireguard_uapi import DeviceState, PeerState

__all__ = ["device_changes", "peer_matches"]


def peer_matches(have: PeerState, want: WgPeer) -> bool:
    return (
        have.endpoint == want.endpoint
        and have.allowed_ips == frozenset(want.allowed_ips)
        and have.keepalive == want.keepalive
        and have.preshared_key == want.psk
    )


def device_changes(state: DeviceState, private_key: str, listen_port: int,
                   peers: Iterable[WgPeer]) -> tuple[list[tuple[str, str]], list[WgPeer]]:
    """(UAPI set lines, peers added or changed); keys are hex."""
    lines: list[tuple[str, str]] = []
    if state.private_key != private_key:
        lines.append(("private_key", private_key))
    if state.listen_port != listen_port:
        lines.append(("listen_port", str(listen_port)))
    wanted = {p.public_key: p for p in peers}
    for key in sorted(state.peers.keys() - wanted.keys()):
        lines += [("public_key", key), ("remove", "true")]
    touched: list[WgPeer] = []
    for key, peer in sorted(wanted.items()):
        have = state.peers.get(key)
        if have is not None and peer_matches(have, peer):
            continue
        touched.append(peer)
        lines += [("public_key", key), ("preshared_key", peer.psk or "0" * 64), ("endpoint", peer.endpoint),
                  ("persistent_keepalive_interval", str(peer.keepalive)), ("replace_allowed_ips", "true")]
        lines += [("allowed_ip", cidr) for cidr in peer.allowed_ips]
    return lines, touched
