"""pycni.net.routes and pycni.net.addrs against the real kernel."""

from __future__ import annotations

from ipaddress import ip_address, ip_interface, ip_network

import pytest

from pycni.net import links, routes, veth
from pycni.net.addrs import add_address, del_address, list_address_states, list_addresses
from pycni.net.errors import LinkNotFound, NetError
from pycni.net.routes import RouteInfo
from tests.support.netns import Netns


def _two_links_up() -> None:
    """Inside a fresh netns: a veth pair a0/a1 and b0/b1, all up, with addresses on a0 and b0."""
    from pycni.net.netns import current_netns_path

    here = current_netns_path()
    for pair in ("a", "b"):
        veth.create_veth_pair(f"{pair}1", here, host_ifname=f"{pair}0")
        links.set_link_up(f"{pair}1")
    add_address("a0", ip_interface("10.94.0.1/24"))
    add_address("b0", ip_interface("10.93.0.1/24"))
    add_address("a0", ip_interface("fd94::1/64"))


def test_addresses(ctrns: Netns) -> None:
    def body() -> None:
        _two_links_up()
        assert set(list_addresses("a0")) == {ip_interface("10.94.0.1/24"), ip_interface("fd94::1/64")}
        assert list_addresses("a0", 4) == [ip_interface("10.94.0.1/24")]
        states = list_address_states("a0", 6)
        assert {s.scope for s in states} == {0, 253}  # global and link-local
        with pytest.raises(NetError, match=r"failed to add address 10\.94\.0\.1/24 to link 'a0': file exists"):
            add_address("a0", ip_interface("10.94.0.1/24"))
        assert del_address("a0", ip_interface("10.94.0.1/24"))
        assert not del_address("a0", ip_interface("10.94.0.1/24"), missing_ok=True)
        with pytest.raises(NetError, match="cannot assign requested address"):
            del_address("a0", ip_interface("10.94.0.1/24"))
        with pytest.raises(LinkNotFound):
            add_address("nosuch", ip_interface("10.94.0.9/24"))

    ctrns.call(body)


def _find(dst: str, **kw: object) -> list[RouteInfo]:
    return [r for r in routes.list_routes(**kw) if r.dst == ip_network(dst)]  # type: ignore[arg-type]


def test_routes(ctrns: Netns) -> None:
    def body() -> None:
        _two_links_up()
        dst = ip_network("198.51.100.0/24")
        routes.add_route(dst, gw=ip_address("10.94.0.2"), dev="a0", priority=50, mtu=1300, advmss=1260)
        [r] = _find("198.51.100.0/24")
        assert (r.gw, r.dev, r.priority, r.mtu, r.advmss, r.table) == (
            ip_address("10.94.0.2"),
            "a0",
            50,
            1300,
            1260,
            254,
        )
        assert routes.route_exists(dst, gw=ip_address("10.94.0.2"), dev="a0")
        assert not routes.route_exists(dst, dev="b0")

        with pytest.raises(NetError, match=r"failed to add route '198.51.100.0/24 via 10.94.0.2 dev a0': file exists"):
            routes.add_route(dst, gw=ip_address("10.94.0.2"), dev="a0", priority=50)
        routes.add_route(dst, gw=ip_address("10.94.0.2"), dev="a0", priority=50, exist_ok=True)

        # ECMP: a second next hop, reported as its own entry.
        routes.add_route(dst, gw=ip_address("10.93.0.2"), dev="b0", priority=50, append=True)
        assert {(r.gw, r.dev) for r in _find("198.51.100.0/24")} == {
            (ip_address("10.94.0.2"), "a0"),
            (ip_address("10.93.0.2"), "b0"),
        }
        other = ip_network("203.0.113.0/24")
        routes.add_route(other, gw=ip_address("10.94.0.2"), dev="a0")
        routes.add_route(other, gw=ip_address("10.93.0.3"), dev="b0", replace=True)
        assert [(r.gw, r.dev) for r in _find("203.0.113.0/24")] == [(ip_address("10.93.0.3"), "b0")]

        # Link-scope route with a preferred source, in another table.
        host = ip_network("10.94.0.9/32")
        routes.add_route(host, dev="a0", scope=routes.RT_SCOPE_LINK, src=ip_address("10.94.0.1"), table=1000)
        [r] = _find("10.94.0.9/32", table=1000)
        assert (r.scope, r.src, r.gw) == (routes.RT_SCOPE_LINK, ip_address("10.94.0.1"), None)
        assert not _find("10.94.0.9/32")  # not in main
        assert routes.del_route(host, dev="a0", table=1000)
        assert not routes.del_route(host, dev="a0", table=1000, missing_ok=True)
        with pytest.raises(NetError, match="no such process"):
            routes.del_route(host, dev="a0", table=1000)

        # Default routes and the interface they use.
        assert routes.default_route_interface(4) is None
        routes.add_route(ip_network("0.0.0.0/0"), gw=ip_address("10.93.0.2"))
        routes.add_route(ip_network("::/0"), gw=ip_address("fd94::2"), dev="a0")
        assert routes.default_route_interface(4) == "b0"
        assert routes.default_route_interface(6) == "a0"
        [d6] = _find("::/0", family=6)
        assert d6.gw == ip_address("fd94::2")
        assert routes.del_route(ip_network("0.0.0.0/0"))
        assert routes.default_route_interface(4) is None

        # The kernel's own prefix route (proto kernel, scope link) can be deleted (ptp does this).
        assert routes.route_exists(ip_network("10.94.0.0/24"), dev="a0")
        assert routes.del_route(ip_network("10.94.0.0/24"), dev="a0")
        assert not routes.route_exists(ip_network("10.94.0.0/24"), dev="a0")

        with pytest.raises(ValueError, match="mutually exclusive"):
            routes.add_route(dst, dev="a0", replace=True, append=True)

    ctrns.call(body)
