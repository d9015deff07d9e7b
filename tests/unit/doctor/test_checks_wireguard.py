"""The wireguard doctor check against snapshots (no root): device present, key as leased, every peer known."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address

from pycni.doctor.checks_wireguard import wireguard
from pycni.doctor.snapshot import LeaseView, Snapshot, StoreView
from pycni.doctor.wireguard_view import WgDeviceView, WgPeerView
from tests.unit.doctor.snapshots import NETWORK, NOW, OWN, PEER, healthy

OWN_KEY, PEER_KEY, OLD_KEY = "A" * 43 + "=", "B" * 43 + "=", "C" * 43 + "="


def wg_snapshot(*, device_key: str = OWN_KEY, lease_key: str = OWN_KEY, peer_on_device: str = PEER_KEY,
                handshake: float = NOW - 30, tx: int = 1000, extra: tuple[WgPeerView, ...] = (),
                device: bool = True) -> Snapshot:
    leases = (LeaseView("n1", OWN, IPv4Address("192.168.77.11"), "wireguard", None, 1440, lease_key),
              LeaseView("n2", PEER, IPv4Address("192.168.77.12"), "wireguard", None, 1440, PEER_KEY))
    peer = WgPeerView(peer_on_device, "192.168.77.12:51820", ("10.244.2.0/24", "192.168.77.12/32"), handshake, 500, tx)
    view = WgDeviceView("wireguard-go (pid 7)", device_key, (peer, *extra), NOW) if device else None
    return replace(healthy(), store=StoreView(error=None, network=NETWORK, backend_type="wireguard", leases=leases),
                   wireguard=view)


def test_a_healthy_device_passes_with_handshake_ages() -> None:
    result = wireguard(wg_snapshot())
    assert result.status == "pass"
    assert any("n2 at 192.168.77.12:51820: last handshake 30s ago" in line for line in result.evidence)


def test_other_backends_pass_with_nothing_to_check() -> None:
    assert wireguard(healthy()).summary == "backend vxlan has no WireGuard device"


def test_no_device_fails_closed() -> None:
    result = wireguard(wg_snapshot(device=False))
    assert result.status == "fail" and "fail closed" in result.summary


def test_a_device_key_other_than_the_lease_fails() -> None:
    result = wireguard(wg_snapshot(lease_key=OLD_KEY))
    assert result.status == "fail" and "lease publishes" in result.summary
    assert f"lease:  {OLD_KEY}" in result.evidence


def test_a_peer_missing_from_the_device_fails() -> None:
    result = wireguard(wg_snapshot(peer_on_device=OLD_KEY))
    assert result.status == "fail" and result.evidence == (f"n2: {PEER_KEY}",)


def test_unanswered_handshakes_warn_and_idle_peers_do_not() -> None:
    assert wireguard(wg_snapshot(handshake=0, tx=3 * 148)).status == "warn"
    assert wireguard(wg_snapshot(handshake=0, tx=148)).status == "pass"  # one initiation: may be in flight
    assert wireguard(wg_snapshot(handshake=0, tx=0)).status == "pass"


def test_a_stale_peer_on_the_device_warns() -> None:
    stale = WgPeerView(OLD_KEY, None, (), 0, 0, 0)
    result = wireguard(wg_snapshot(extra=(stale,)))
    assert result.status == "warn" and OLD_KEY in result.evidence
