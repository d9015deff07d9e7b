"""pycni.ipam.dhcp.lease: a lease's timers as a state machine over a fake clock, and its JSON form."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv4Network

import pytest

from pycni.ipam.dhcp.lease import MIN_RETRY, Lease, Phase, Step, next_step, phase, renewed
from pycni.ipam.dhcp.options import Grant, OptionPlan
from pycni.spec.result import Route

T0 = 1_000_000.0
GRANT = Grant(
    address=IPv4Interface("10.9.0.100/24"),
    server_id=IPv4Address("10.9.0.1"),
    gateway=IPv4Address("10.9.0.1"),
    routes=(Route(dst=IPv4Network("0.0.0.0/0"), gw=IPv4Address("10.9.0.1")),),
    lease_time=1000.0,
    renew_after=500.0,
    rebind_after=875.0,
)
LEASE = Lease(
    client_id=b"\0c/n/eth0",
    container_id="c",
    network="n",
    netns="/run/netns/x",
    ifname="eth0",
    options=OptionPlan((3, 1), ((61, b"\0c/n/eth0"), (12, b"host"))),
    grant=GRANT,
    bound_at=T0,
    server_mac=bytes.fromhex("020000000001"),
)


@pytest.mark.parametrize(
    ("offset", "expected"),
    [(0, Phase.BOUND), (499.9, Phase.BOUND), (500, Phase.RENEWING), (875, Phase.REBINDING), (1000, Phase.EXPIRED)],
)
def test_phases_follow_t1_t2_and_the_lease_end(offset: float, expected: Phase) -> None:
    assert phase(LEASE, T0 + offset) is expected


def test_bound_waits_until_t1() -> None:
    assert next_step(LEASE, T0 + 10) == Step("wait", T0 + 500)


def test_renewing_tries_at_once_then_retries_at_half_the_time_left_until_t2() -> None:
    assert next_step(LEASE, T0 + 500) == Step("renew", T0 + 875)
    tried = T0 + 510  # that attempt went unanswered at +510
    assert next_step(LEASE, T0 + 511, tried) == Step("wait", tried + (875 - 510) / 2)
    assert next_step(LEASE, tried + (875 - 510) / 2, tried) == Step("renew", T0 + 875)


def test_retries_wait_at_least_min_retry_but_never_past_the_phase_end() -> None:
    tried = T0 + 873  # 2 s before T2: MIN_RETRY would pass it
    assert next_step(LEASE, tried, tried) == Step("wait", T0 + 875)
    tried = T0 + 860  # 15 s before T2: half is 7.5 s
    assert next_step(LEASE, tried, tried) == Step("wait", tried + 7.5)
    tried = T0 + 868  # 7 s before T2: half is 3.5 s, so MIN_RETRY
    assert next_step(LEASE, tried, tried) == Step("wait", tried + MIN_RETRY)


def test_rebinding_starts_at_t2_even_after_a_failed_renew() -> None:
    assert next_step(LEASE, T0 + 875, tried=T0 + 870) == Step("rebind", T0 + 1000)
    tried = T0 + 880
    assert next_step(LEASE, T0 + 881, tried) == Step("wait", tried + 60)
    assert next_step(LEASE, tried + 60, tried) == Step("rebind", T0 + 1000)


def test_an_expired_lease_is_acquired_anew_and_failures_back_off() -> None:
    assert next_step(LEASE, T0 + 1000) == Step("reacquire", T0 + 1000)
    assert next_step(LEASE, T0 + 1000, tried=T0 + 990) == Step("reacquire", T0 + 1000)  # tried while rebinding
    tried = T0 + 1001
    assert next_step(LEASE, T0 + 1002, tried) == Step("wait", tried + MIN_RETRY)
    assert next_step(LEASE, tried + MIN_RETRY, tried) == Step("reacquire", tried + MIN_RETRY)


def test_renewed_restarts_the_timers_from_the_ack() -> None:
    later = T0 + 600
    lease = renewed(LEASE, GRANT, later, server_mac=b"\x02" * 6)
    assert (lease.renew_at, lease.rebind_at, lease.expires_at) == (later + 500, later + 875, later + 1000)
    assert lease.server_mac == b"\x02" * 6
    assert renewed(LEASE, GRANT, later).server_mac == LEASE.server_mac
    assert next_step(lease, later + 1) == Step("wait", later + 500)


def test_a_lease_survives_its_json_form() -> None:
    assert Lease.from_json(LEASE.to_json()) == LEASE
    no_gateway = renewed(LEASE, Grant(GRANT.address, GRANT.server_id, None, (), 60.0, 30.0, 52.5), T0)
    assert Lease.from_json(no_gateway.to_json()) == no_gateway
