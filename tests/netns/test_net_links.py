"""pycni.net.links against the real kernel: veth pairs, stacked links, lifecycle helpers."""

from __future__ import annotations

import os
from collections.abc import Callable
from ipaddress import ip_interface, ip_network

import pytest

from pycni.net import links, stacked, tap, veth
from pycni.net.addrs import add_address
from pycni.net.errors import LinkExists, LinkNotFound, LinkNotUp, NetnsNotFound, UnsupportedKernelFeature
from pycni.net.links import LinkInfo
from pycni.net.routes import add_route
from pycni.net.sysctl import iface_key, read_sysctl
from tests.support.netns import Netns, ping, unique


def _veth(hostns: Netns, ctrns: Netns, **kw: object) -> tuple[LinkInfo, LinkInfo]:
    return hostns.call(veth.create_veth_pair, "eth0", ctrns.path, **kw)  # type: ignore[arg-type]


def test_veth_pair_into_netns_with_address_route_and_ping(hostns: Netns, ctrns: Netns) -> None:
    host, ctr = _veth(hostns, ctrns, mtu=1400, container_mac="02:42:ac:11:00:02")

    assert host.name.startswith("veth") and len(host.name) == 12
    assert host.kind == ctr.kind == "veth"
    assert host.up and not ctr.up  # the container end is for ConfigureIface to bring up
    assert (ctr.name, ctr.mac, ctr.mtu, host.mtu) == ("eth0", "02:42:ac:11:00:02", 1400, 1400)
    assert ctr.peer_index == host.index and host.peer_index == ctr.index
    assert hostns.call(read_sysctl, iface_key(6, host.name, "accept_ra")) == "0"

    def host_side() -> None:
        add_address(host.name, ip_interface("10.99.0.1/24"))
        add_address("lo", ip_interface("192.0.2.1/32"))

    def container_side() -> None:
        add_address("eth0", ip_interface("10.99.0.2/24"))
        links.set_link_up("eth0")
        add_route(ip_network("0.0.0.0/0"), gw=ip_interface("10.99.0.1/24").ip, dev="eth0")

    hostns.call(host_side)
    ctrns.call(container_side)
    assert hostns.call(links.wait_oper_up, host.name).oper_state == "up"
    assert ping(ctrns, "10.99.0.1")
    assert ping(ctrns, "192.0.2.1")  # off-link: needs the default route
    assert ping(hostns, "10.99.0.2")


def test_veth_rejects_an_existing_container_name(hostns: Netns, ctrns: Netns) -> None:
    _veth(hostns, ctrns)
    with pytest.raises(LinkExists, match=r"^container veth name provided \(eth0\) already exists$"):
        _veth(hostns, ctrns)


def test_veth_with_a_taken_host_name_fails_cleanly(
    hostns: Netns, ctrns: Netns, make_netns: Callable[[], Netns]
) -> None:
    host, _ = _veth(hostns, ctrns)
    other = make_netns()
    with pytest.raises(LinkExists, match=f"host veth name '{host.name}' already exists"):
        hostns.call(veth.create_veth_pair, "eth1", other.path, host_ifname=host.name)
    assert not other.call(links.link_exists, "eth1")


def test_veth_into_a_missing_netns(hostns: Netns) -> None:
    gone = "/run/netns/" + unique("pycni-gone-")
    with pytest.raises(NetnsNotFound):
        hostns.call(veth.create_veth_pair, "eth0", gone)
    assert not os.path.exists(gone)


def test_get_link_and_delete_link(hostns: Netns, ctrns: Netns) -> None:
    host, ctr = _veth(hostns, ctrns)
    assert links.get_link("eth0", ctrns.path) == ctr
    assert links.get_link_by_index(ctr.index, ctrns.path).name == "eth0"
    assert links.link_exists("eth0", ctrns.path)
    assert "eth0" in {link.name for link in links.list_links(ctrns.path)}

    assert links.delete_link("eth0", ctrns.path) is True
    assert not links.link_exists("eth0", ctrns.path)
    assert not hostns.call(links.link_exists, host.name)  # the pair goes together

    with pytest.raises(LinkNotFound, match="failed to find link 'eth0': no such device"):
        links.delete_link("eth0", ctrns.path)
    with pytest.raises(LinkNotFound):
        links.get_link("eth0", ctrns.path)
    with pytest.raises(LinkNotFound):
        links.get_link("x" * 20, ctrns.path)  # longer than IFNAMSIZ: cannot exist
    assert links.delete_link("eth0", ctrns.path, missing_ok=True) is False
    gone = "/run/netns/" + unique("pycni-gone-")
    assert links.delete_link("eth0", gone, missing_ok=True) is False
    with pytest.raises(NetnsNotFound):
        links.delete_link("eth0", gone)


def test_rename_alias_mtu_mac_and_move(hostns: Netns, ctrns: Netns, make_netns: Callable[[], Netns]) -> None:
    _veth(hostns, ctrns)
    third = make_netns()

    def change() -> LinkInfo:
        links.rename_link("eth0", "net1")
        links.set_link_alias("net1", "original-name")
        links.set_link_mtu("net1", 1280)
        links.set_link_mac("net1", "02:00:00:00:00:aa")
        links.set_link_up("net1")
        links.set_link_down("net1")
        return links.get_link("net1")

    info = ctrns.call(change)
    assert (info.name, info.alias, info.mtu, info.mac, info.up) == (
        "net1",
        "original-name",
        1280,
        "02:00:00:00:00:aa",
        False,
    )

    # Move with a rename in one step: the new name is only checked in the target.
    ctrns.call(links.move_link_to_netns, "net1", third.path, "eth7")
    assert not ctrns.call(links.link_exists, "net1")
    moved = links.get_link("eth7", third.path)
    assert moved.alias == "original-name"
    third.call(links.set_link_alias, "eth7", "")
    assert links.get_link("eth7", third.path).alias == ""


def test_wait_oper_up_reports_the_state(hostns: Netns, ctrns: Netns) -> None:
    host, _ = _veth(hostns, ctrns)
    # The container end is down, so the host end has no carrier.
    with pytest.raises(LinkNotUp) as caught:
        hostns.call(links.wait_oper_up, host.name, (0.0, 0.01))
    assert caught.value.state in ("down", "lower-layer-down")
    ctrns.call(links.set_link_up, "eth0")
    assert hostns.call(links.wait_oper_up, host.name).oper_state == "up"


def _macvlan_parent(hostns: Netns) -> str:
    """A veth in the host ns whose peer is up, so the pair has carrier: a stand-in for eth0."""
    parent = unique("par")
    hostns.run("ip", "link", "add", parent, "type", "veth", "peer", "name", parent + "p")
    hostns.run("ip", "link", "set", parent + "p", "up")
    hostns.run("ip", "link", "set", parent, "up")
    return parent


def test_macvlan_on_a_veth_parent(hostns: Netns, make_netns: Callable[[], Netns]) -> None:
    parent = _macvlan_parent(hostns)
    a, b = make_netns(), make_netns()
    info = hostns.call(stacked.create_macvlan, parent, "eth0", a.path, mode="bridge", mtu=1400, mac="02:00:00:00:01:01")
    assert (info.name, info.kind, info.mode, info.mtu, info.mac) == (
        "eth0",
        "macvlan",
        "bridge",
        1400,
        "02:00:00:00:01:01",
    )
    hostns.call(stacked.create_macvlan, parent, "eth0", b.path, mode="bridge")

    # Two macvlans in bridge mode on one parent reach each other.
    a.call(add_address, "eth0", ip_interface("10.98.0.1/24"))
    b.call(add_address, "eth0", ip_interface("10.98.0.2/24"))
    a.call(links.set_link_up, "eth0")
    b.call(links.set_link_up, "eth0")
    assert ping(a, "10.98.0.2", count=2)

    with pytest.raises(LinkExists, match="failed to create macvlan 'eth0': file exists"):
        hostns.call(stacked.create_macvlan, parent, "eth0", a.path)
    with pytest.raises(LinkNotFound, match="failed to find master 'nosuch0'"):
        hostns.call(stacked.create_macvlan, "nosuch0", "eth1", a.path)


def test_macvlan_with_the_master_in_the_container(ctrns: Netns) -> None:
    parent = _macvlan_parent(ctrns)
    info = ctrns.call(stacked.create_macvlan, parent, "mv0", ctrns.path, mode="private", link_in_container=True)
    assert (info.kind, info.mode) == ("macvlan", "private")


def test_tap_in_netns(ctrns: Netns) -> None:
    info = tap.create_tap("tap0", ctrns.path, mtu=1300, mac="02:00:00:00:02:02")
    assert (info.name, info.kind, info.mtu, info.mac) == ("tap0", "tun", 1300, "02:00:00:00:02:02")
    with pytest.raises(LinkExists):
        tap.create_tap("tap0", ctrns.path)
    assert links.delete_link("tap0", ctrns.path)


@pytest.mark.parametrize("kind", ["ipvlan", "vlan", "dummy"])
def test_link_types_this_kernel_may_lack(kind: str, hostns: Netns, ctrns: Netns) -> None:
    parent = _macvlan_parent(hostns)
    create: Callable[[], LinkInfo] = {
        "ipvlan": lambda: hostns.call(stacked.create_ipvlan, parent, "eth0", ctrns.path, mode="l2"),
        "vlan": lambda: hostns.call(stacked.create_vlan, parent, 100, "eth0", ctrns.path),
        "dummy": lambda: stacked.create_dummy("eth0", ctrns.path),
    }[kind]
    try:
        info = create()
    except UnsupportedKernelFeature as exc:
        assert str(exc) == f"failed to create {kind} 'eth0': kernel does not support link type '{kind}'"
        return
    assert (info.name, info.kind) == ("eth0", kind)
    pytest.skip(f"this kernel supports {kind}: its unsupported-kernel error path is not exercised here")
