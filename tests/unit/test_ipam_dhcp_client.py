"""pycni.ipam.dhcp.client: the exchanges against a scripted server, on a fake clock."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from pycni.ipam.dhcp.client import BROADCAST_MAC, Client, NoAnswer, Refused, Timing
from pycni.ipam.dhcp.options import OptionPlan, client_identifier
from pycni.ipam.dhcp.packet import FLAG_BROADCAST, MessageType, Opt, encode, frame_udp
from tests.support.fake_dhcp import SERVER_IP, SERVER_MAC, FakeClock, FakeLink, FakeServer

CID = client_identifier("c", "n", "eth0")
PLAN = OptionPlan((3, 1), ((61, CID), (12, b"web-1")))
ALL = IPv4Address("255.255.255.255")


def make(
    server: FakeServer, *, broadcast: bool = False, timeout: float = 10.0, mac: str = "0a0000000002"
) -> tuple[Client, FakeLink]:
    clock = FakeClock()
    link = FakeLink(server, bytes.fromhex(mac), clock=clock)
    xids = iter(range(0x1000, 0x2000))
    client = Client(
        link, PLAN, broadcast=broadcast, timing=Timing(timeout=timeout), xids=lambda: next(xids), monotonic=clock
    )
    return client, link


def test_acquire_is_discover_offer_request_ack_broadcast() -> None:
    server = FakeServer()
    client, _ = make(server)
    reply = client.acquire()
    assert reply.message.message_type is MessageType.ACK and reply.message.yiaddr == IPv4Address("10.9.0.100")
    assert reply.server_mac == SERVER_MAC
    discover, request = server.seen
    assert (discover.kind, request.kind) == (MessageType.DISCOVER, MessageType.REQUEST)
    for seen in server.seen:
        assert (seen.dst_mac, seen.dst_ip, seen.src_ip) == (BROADCAST_MAC, ALL, IPv4Address(0))
        assert seen.message.option(Opt.CLIENT_ID) == CID and seen.message.option(Opt.HOST_NAME) == b"web-1"
        assert seen.message.option(Opt.PARAMETER_REQUEST_LIST) == bytes((3, 1))
        assert seen.message.flags == 0
    assert request.message.xid == discover.message.xid
    assert request.message.option(Opt.REQUESTED_IP) == IPv4Address("10.9.0.100").packed
    assert request.message.option(Opt.SERVER_ID) == SERVER_IP.packed


def test_the_broadcast_flag_is_asked_for_when_configured() -> None:
    server = FakeServer()
    client, _ = make(server, broadcast=True)
    client.acquire()
    assert all(seen.message.flags == FLAG_BROADCAST for seen in server.seen)


def test_renew_unicasts_to_the_server_and_rebind_broadcasts_both_from_the_leased_address() -> None:
    server = FakeServer()
    client, _ = make(server)
    address = client.acquire().message.yiaddr
    assert client.renew(address, SERVER_IP, SERVER_MAC).message.message_type is MessageType.ACK
    assert client.rebind(address).message.message_type is MessageType.ACK
    renew, rebind = server.seen[2:]
    assert (renew.dst_mac, renew.dst_ip, renew.src_ip) == (SERVER_MAC, SERVER_IP, address)
    assert (rebind.dst_mac, rebind.dst_ip, rebind.src_ip) == (BROADCAST_MAC, ALL, address)
    for seen in (renew, rebind):
        assert seen.message.ciaddr == address
        assert seen.message.option(Opt.SERVER_ID) is None and seen.message.option(Opt.REQUESTED_IP) is None


def test_release_is_one_unicast_with_the_server_and_client_id_only() -> None:
    server = FakeServer()
    client, link = make(server)
    address = client.acquire().message.yiaddr
    client.release(address, SERVER_IP, SERVER_MAC)
    release = server.seen[-1]
    assert release.kind is MessageType.RELEASE and release.message.ciaddr == address
    assert (release.dst_mac, release.dst_ip) == (SERVER_MAC, SERVER_IP)
    assert dict(release.message.options) == {53: bytes((7,)), 54: SERVER_IP.packed, 61: CID}
    assert server.leases == {} and not link.queue


def test_a_silent_server_means_resends_on_a_doubling_interval_then_no_answer() -> None:
    server = FakeServer(silent=True)
    client, link = make(server, timeout=10)
    with pytest.raises(NoAnswer, match="no DHCPOFFER within 10s"):
        client.acquire()
    assert server.kinds() == [MessageType.DISCOVER] * 4  # at 0, 1, 3 and 7 s
    assert link.clock.now == pytest.approx(1_000_010)


def test_a_nak_is_refused_and_acquire_starts_over_once() -> None:
    server = FakeServer(refuse=True)
    client, _ = make(server)
    with pytest.raises(Refused, match="DHCPNAK"):
        client.acquire()
    assert server.kinds() == [MessageType.DISCOVER, MessageType.REQUEST] * 2


def test_replies_to_others_and_noise_are_ignored() -> None:
    server = FakeServer()
    client, link = make(server)
    other = FakeServer()
    other_client, _ = make(other, mac="0a00000000ff")
    other_client.acquire()  # the same xids, another MAC: its ACK and OFFER, and some noise, wait before ours
    offer_to_other = other._reply(other.seen[0].message, MessageType.OFFER, IPv4Address("10.9.0.77"))
    ack_to_other = other._reply(other.seen[1].message, MessageType.ACK, IPv4Address("10.9.0.77"))
    strays = [frame_udp(SERVER_IP, ALL, 67, 68, encode(m)) for m in (offer_to_other, ack_to_other)]
    link.queue.extend(
        [(b"not ip", SERVER_MAC), *((p, SERVER_MAC) for p in strays), (frame_udp(SERVER_IP, ALL, 53, 68, b"x"), b"")]
    )
    assert client.acquire().message.yiaddr == IPv4Address("10.9.0.100")
