"""The wireguard check (pure): the device runs, holds the key its lease publishes, and knows every peer.

- fail: the cluster runs wireguard and the node has no device (wireguard-go
  down and not yet replaced: pod traffic to other nodes drops, fail closed);
  the device's public key is not the one the node's lease publishes (peers
  encrypt to a key this node cannot answer); a peer lease's key is missing
  from the device.
- warn: a peer was sent three handshake initiations but never answered (its
  wireguard-go down, UDP to its port blocked, a wrong endpoint), or the
  device holds a peer no lease names (a stale key; the agent removes it on
  its next converge).
- pass: every peer with its last handshake's age in the evidence (a peer
  nobody talked to has none: WireGuard handshakes only when there is traffic).
"""

from __future__ import annotations

from pycni.doctor.result import CheckResult, fail, passed, skip, warn
from pycni.doctor.snapshot import Snapshot

__all__ = ["wireguard"]

ID = "wireguard"
# Without a session, a peer is sent only handshake initiations (148 bytes, retried every 5 s): three unanswered
# ones are 10 s of trying, not a handshake still in flight just after a restart.
UNANSWERED = 3 * 148


def _age(last: float, now: float) -> str:
    return "no handshake yet" if not last else f"last handshake {max(0, now - last):.0f}s ago"


def wireguard(snap: Snapshot) -> CheckResult:
    store = snap.store
    if store is None or store.error is not None or store.backend_type is None:
        return skip(ID, "backend not known (see datastore)")
    if store.backend_type != "wireguard":
        return passed(ID, f"backend {store.backend_type} has no WireGuard device")
    if "wireguard" in snap.errors:
        return fail(ID, "cannot read the WireGuard device", [snap.errors["wireguard"]])
    dev = snap.wireguard
    own = snap.own_lease
    if dev is None:
        return fail(ID, "no WireGuard device: pod traffic to other nodes is dropped (fail closed)",
                    [f"no running wireguard-go recorded in {snap.options.run_dir}/wireguard/ and no kernel device"],
                    "check the agent (it starts wireguard-go on its next converge) and its log")
    if own is not None and own.public_key != dev.public_key:
        return fail(ID, "the device's key is not the one the node's lease publishes",
                    [f"device: {dev.public_key}", f"lease:  {own.public_key}"],
                    "restart the agent (it publishes the device's key), or pycni node rotate-key")
    on_device = {p.public_key: p for p in dev.peers}
    peers = [lease for lease in store.leases if lease.node != snap.options.node_name]
    missing = [f"{lease.node}: {lease.public_key or 'no key in its lease'}" for lease in peers
               if lease.public_key not in on_device]
    if missing:
        return fail(ID, f"{len(missing)} peer(s) not on the device: their pods are unreachable", missing,
                    "wait one resync interval; if it persists, see the agent log")
    evidence, silent = [f"device: {dev.implementation}, key {dev.public_key}"], []
    for lease in sorted(peers, key=lambda lease: lease.node):
        p = on_device[str(lease.public_key)]
        evidence.append(f"{lease.node} at {p.endpoint}: {_age(p.last_handshake, dev.collected_at)}, "
                        f"sent {p.tx_bytes} B, received {p.rx_bytes} B")
        if not p.last_handshake and p.tx_bytes >= UNANSWERED:
            silent.append(lease.node)
    stale = sorted(set(on_device) - {lease.public_key for lease in peers})
    if silent:
        return warn(ID, f"no handshake with {', '.join(silent)} although traffic was sent", evidence,
                    f"check wireguard-go on {silent[0]} and UDP to its port")
    if stale:
        return warn(ID, f"{len(stale)} peer(s) on the device that no lease names", evidence + stale,
                    "the agent removes them on its next converge")
    return passed(ID, f"{len(peers)} peer(s), the device's key is the lease's", evidence)
