"""configure_iface (ConfigureIface) against the real kernel."""

from __future__ import annotations

from ipaddress import ip_address, ip_interface, ip_network

import pytest

from pycni.net import links, routes, veth
from pycni.net.addrs import add_address, list_address_states, list_addresses
from pycni.net.configure import configure_iface
from pycni.net.errors import LinkNotFound, NetError
from pycni.net.sysctl import iface_key, read_sysctl, write_sysctl
from pycni.spec.result import Interface, IPConfig, Result, Route
from tests.support.netns import Netns, ping

V4 = ip_interface("10.92.0.2/24")
V6 = ip_interface("fd92::2/64")
GW4 = ip_address("10.92.0.1")
GW6 = ip_address("fd92::1")


def _result(ctr: Netns, *ips: IPConfig, routes: tuple[Route, ...] = ()) -> Result:
    return Result("1.1.0", interfaces=(Interface("eth0", sandbox=ctr.path),), ips=ips, routes=routes)


def _wire(hostns: Netns, ctrns: Netns) -> str:
    host, _ = hostns.call(veth.create_veth_pair, "eth0", ctrns.path)
    hostns.run("ip", "addr", "add", f"{GW4}/24", "dev", host.name)
    hostns.run("ip", "addr", "add", f"{GW6}/64", "dev", host.name, "nodad")
    return host.name


def test_configure_v4_and_v6_with_dad_wait_and_gateway_fallback(hostns: Netns, ctrns: Netns) -> None:
    _wire(hostns, ctrns)
    # A runtime may hand us a namespace with IPv6 disabled: configure_iface enables it.
    ctrns.call(write_sysctl, iface_key(6, "eth0", "disable_ipv6"), 1)
    result = _result(
        ctrns,
        IPConfig(V4, GW4, 0),
        IPConfig(V6, GW6, 0),
        IPConfig(ip_interface("10.91.0.9/24"), None, None),  # no interface index: skipped
        routes=(
            Route(ip_network("0.0.0.0/0")),  # via the IPv4 gateway
            Route(ip_network("::/0")),  # via the IPv6 gateway
            Route(ip_network("198.51.100.0/24"), gw=GW4, priority=10, mtu=1300),
        ),
    )
    ctrns.call(configure_iface, "eth0", result)

    def inspect() -> None:
        assert set(list_addresses("eth0")) == {V4, V6}
        assert not [s for s in list_address_states("eth0", 6) if s.tentative]
        assert read_sysctl(iface_key(6, "eth0", "disable_ipv6")) == "0"
        assert read_sysctl(iface_key(6, "eth0", "keep_addr_on_down")) == "1"
        assert links.get_link("eth0").up
        assert routes.route_exists(ip_network("0.0.0.0/0"), gw=GW4, dev="eth0")
        assert routes.route_exists(ip_network("::/0"), gw=GW6, dev="eth0")
        [r] = [r for r in routes.list_routes("eth0", 4) if r.dst == ip_network("198.51.100.0/24")]
        assert (r.gw, r.priority, r.mtu) == (GW4, 10, 1300)

    ctrns.call(inspect)
    assert ping(ctrns, str(GW4))
    assert ping(ctrns, str(GW6))


def test_configure_rejects_a_wrong_interface_index_before_changing_anything(hostns: Netns, ctrns: Netns) -> None:
    _wire(hostns, ctrns)
    for index in (1, -1):
        with pytest.raises(NetError, match=r"failed to add IP addr 10.92.0.2/24 to 'eth0': invalid interface index"):
            ctrns.call(configure_iface, "eth0", _result(ctrns, IPConfig(V4, GW4, index)))
    other = Result("1.1.0", interfaces=(Interface("net1"),), ips=(IPConfig(V4, GW4, 0),))
    with pytest.raises(NetError, match="invalid interface index"):
        ctrns.call(configure_iface, "eth0", other)
    with pytest.raises(NetError, match="no interfaces to configure"):
        ctrns.call(configure_iface, "eth0", Result("1.1.0", ips=(IPConfig(V4, GW4, 0),)))
    with pytest.raises(LinkNotFound):
        ctrns.call(configure_iface, "eth9", _result(ctrns))
    assert ctrns.call(list_addresses, "eth0") == []
    assert not ctrns.call(links.get_link, "eth0").up


def test_configure_reports_a_duplicate_ipv6_address(hostns: Netns, ctrns: Netns) -> None:
    host = _wire(hostns, ctrns)
    hostns.run("ip", "addr", "add", str(V6), "dev", host, "nodad")
    with pytest.raises(NetError, match=r"duplicate address detection failed for fd92::2/64"):
        ctrns.call(configure_iface, "eth0", _result(ctrns, IPConfig(V6, GW6, 0)))


def test_configure_does_not_wait_for_dad_without_an_ipv6_gateway(hostns: Netns, ctrns: Netns) -> None:
    _wire(hostns, ctrns)
    ctrns.call(configure_iface, "eth0", _result(ctrns, IPConfig(V6, None, 0)), dad_timeout=0)
    assert ctrns.call(list_addresses, "eth0", 6) == [V6]


def test_dad_timeout_is_an_error_only_when_the_link_is_up(hostns: Netns, ctrns: Netns) -> None:
    host = _wire(hostns, ctrns)
    # The peer is down: no carrier, DAD never completes, and that is tolerated.
    hostns.call(links.set_link_down, host)
    ctrns.call(configure_iface, "eth0", _result(ctrns, IPConfig(V6, GW6, 0)), dad_timeout=0.2)
    assert ctrns.call(list_addresses, "eth0", 6) == [V6]


def test_add_address_then_configure_sees_it_as_existing(hostns: Netns, ctrns: Netns) -> None:
    _wire(hostns, ctrns)
    ctrns.call(add_address, "eth0", V4)
    with pytest.raises(NetError, match=r"failed to add address 10\.92\.0\.2/24 to link 'eth0': file exists"):
        ctrns.call(configure_iface, "eth0", _result(ctrns, IPConfig(V4, GW4, 0)))
