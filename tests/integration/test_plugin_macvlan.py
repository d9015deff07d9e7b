"""pycni's macvlan plugin in real namespaces, on veth masters of our own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.linkplugin_helpers import (
    VERSIONS,
    Attach,
    HostLinks,
    addresses,
    host_local,
    link_details,
    subnet_host,
)
from tests.support.cnilab import CniLab, use_free_subnets
from tests.support.host import link_exists, ping, run


@pytest.fixture(autouse=True)
def _free_subnets(lab: CniLab) -> None:
    use_free_subnets(lab)


@pytest.fixture
def host_links() -> Iterator[HostLinks]:
    links = HostLinks()
    yield links
    links.cleanup()


def macvlan(lab: CniLab, master: str, **extra: object) -> dict:
    lab.install_pycni("macvlan", "host-local", "static")
    return {"type": "macvlan", "master": master, "ipam": host_local(lab, routes=False), **extra}


@pytest.mark.parametrize("version", VERSIONS)
def test_macvlan_pods_on_one_master_reach_each_other(
    lab: CniLab, make_netns, host_links: HostLinks, version: str
) -> None:
    master, _ = host_links.veth_pair()
    net = Attach(lab, "mvnet", macvlan(lab, master, mtu=1400), version)
    pods = []
    for _ in range(2):
        ns = make_netns()
        rt = net.rt(ns.path)
        result = net.add(rt)
        pods.append((ns, rt, result))

    for ns, _, result in pods:
        assert result.to_wire()["cniVersion"] == version
        (iface,) = result.interfaces
        assert (iface.name, iface.sandbox) == ("eth0", ns.path)
        assert result.ips[0].interface == 0
        details = link_details("eth0", ns.name)
        assert details["linkinfo"]["info_kind"] == "macvlan"
        assert details["linkinfo"]["info_data"]["mode"] == "bridge"
        assert details["mtu"] == 1400 and details["address"] == iface.mac
        assert addresses("eth0", ns.name) == [str(result.ips[0].address)]
    (ns_a, rt_a, _), (_, _, result_b) = pods
    assert ping(str(result_b.ips[0].address.ip), ns_a.name)
    if version != "0.3.1":
        net.check(rt_a)

    for ns, rt, _ in pods:
        net.delete(rt)
        assert not link_exists("eth0", ns.name)
        net.delete(rt)  # idempotent
    assert lab.reserved_ips("mvnet") == []
    assert link_exists(master)  # the master is never touched


def test_macvlan_master_in_container_reaches_an_underlay(lab: CniLab, make_netns, host_links: HostLinks) -> None:
    # linkInContainer: the master lives in the pod's netns, its peer in an "underlay" netns.
    pod, underlay = make_netns(), make_netns()
    master, peer = host_links.veth_pair(a_netns=pod.name, b_netns=underlay.name)
    peer_ip = subnet_host(lab.subnet4, 250)
    run("ip", "addr", "add", f"{peer_ip}/24", "dev", peer, netns=underlay.name)
    net = Attach(lab, "mvnet", macvlan(lab, master, linkInContainer=True, mode="private"))
    rt = net.rt(pod.path)

    result = net.add(rt)

    assert link_details("eth0", pod.name)["linkinfo"]["info_data"]["mode"] == "private"
    assert ping(peer_ip, pod.name)
    net.check(rt)
    net.delete(rt)
    assert not link_exists("eth0", pod.name)
    assert link_exists(master, pod.name)
    assert lab.reserved_ips("mvnet") == []
    assert str(result.ips[0].address.ip) != peer_ip


def test_macvlan_without_ipam_is_up_with_requested_mac(lab: CniLab, make_netns, host_links: HostLinks) -> None:
    master, _ = host_links.veth_pair()
    conf = {**macvlan(lab, master, mac="02:00:00:aa:bb:01"), "ipam": {}}
    net = Attach(lab, "mvnet", conf)
    ns = make_netns()
    rt = net.rt(ns.path, args=(("IgnoreUnknown", "1"), ("MAC", "02:00:00:aa:bb:02")))

    result = net.add(rt)

    assert result.ips == () and result.interfaces[0].mac == "02:00:00:aa:bb:02"  # CNI_ARGS wins
    details = link_details("eth0", ns.name)
    assert "UP" in details["flags"] and details["address"] == "02:00:00:aa:bb:02"
    assert addresses("eth0", ns.name) == []
    net.check(rt)
    net.delete(rt)
    assert not link_exists("eth0", ns.name)


def test_macvlan_default_master_is_the_default_route_interface(lab: CniLab, make_netns, host_links: HostLinks) -> None:
    # Inside a netns (linkInContainer) so the host's default route is never involved.
    pod, underlay = make_netns(), make_netns()
    master, _ = host_links.veth_pair(a_netns=pod.name, b_netns=underlay.name)
    run("ip", "addr", "add", "192.0.2.10/24", "dev", master, netns=pod.name)
    run("ip", "route", "add", "default", "via", "192.0.2.1", "dev", master, netns=pod.name)
    conf = {**macvlan(lab, master, linkInContainer=True), "ipam": {}}
    del conf["master"]
    net = Attach(lab, "mvnet", conf)
    rt = net.rt(pod.path)
    net.add(rt)
    assert link_details("eth0", pod.name)["link"] == master
    net.delete(rt)


def test_macvlan_check_detects_removed_address(lab: CniLab, make_netns, host_links: HostLinks) -> None:
    master, _ = host_links.veth_pair()
    net = Attach(lab, "mvnet", macvlan(lab, master))
    ns = make_netns()
    rt = net.rt(ns.path)
    result = net.add(rt)
    net.check(rt)
    run("ip", "addr", "del", str(result.ips[0].address), "dev", "eth0", netns=ns.name)
    with pytest.raises(Exception, match=r"address .* not found on interface 'eth0'"):
        net.check(rt)
    net.delete(rt)


def test_macvlan_check_detects_removed_route(lab: CniLab, make_netns, host_links: HostLinks) -> None:
    master, _ = host_links.veth_pair()
    net = Attach(lab, "mvnet", macvlan(lab, master, ipam=host_local(lab)))
    ns = make_netns()
    rt = net.rt(ns.path)
    net.add(rt)
    net.check(rt)
    run("ip", "route", "del", "default", netns=ns.name)
    with pytest.raises(Exception, match=r"route 0\.0\.0\.0/0 .*not found"):
        net.check(rt)
    net.delete(rt)
    assert lab.reserved_ips("mvnet") == []


def test_macvlan_del_survives_a_vanished_master_and_netns(lab: CniLab, make_netns, host_links: HostLinks) -> None:
    master, _ = host_links.veth_pair()
    net = Attach(lab, "mvnet", macvlan(lab, master))
    ns = make_netns()
    rt = net.rt(ns.path)
    net.add(rt)
    run("ip", "link", "delete", master)  # takes the macvlan with it
    net.delete(rt)
    assert lab.reserved_ips("mvnet") == []

    net2 = Attach(lab, "mvnet2", macvlan(lab, host_links.veth_pair()[0]))
    ns2 = make_netns()
    rt2 = net2.rt(ns2.path)
    net2.add(rt2)
    run("ip", "netns", "delete", ns2.name)
    net2.delete(rt2)
    assert lab.reserved_ips("mvnet2") == []


def test_macvlan_failed_add_releases_the_address(lab: CniLab, make_netns, host_links: HostLinks) -> None:
    master, _ = host_links.veth_pair()
    # A route via a gateway that is not on-link: ConfigureIface fails after IPAM ADD.
    ipam = {**host_local(lab, routes=False), "routes": [{"dst": "198.51.100.0/24", "gw": "203.0.113.1"}]}
    net = Attach(lab, "mvnet", macvlan(lab, master, ipam=ipam))
    ns = make_netns()
    err = net.add_error(net.rt(ns.path))
    assert "198.51.100.0/24" in str(err)
    assert not link_exists("eth0", ns.name)
    assert lab.reserved_ips("mvnet") == []


@pytest.mark.parametrize(
    ("extra", "code", "text"),
    [
        ({"master": "nosuch0"}, 7, 'master: link "nosuch0" not found'),
        ({"master": "../eth0"}, 7, "master: '../eth0' is not a valid interface name"),
        ({"master": "a" * 16}, 7, "is not a valid interface name"),
        ({"mode": "foo"}, 7, "mode: 'foo' is not one of bridge, private, vepa, passthru"),
        ({"mtu": -5}, 7, "mtu: expected a non-negative integer"),
        ({"mtu": 9000}, 7, "mtu: 9000 is larger than the MTU of master"),
        ({"mac": "zz:00:00:00:00:00"}, 7, "mac: "),
        ({"linkInContainer": 1}, 7, "linkInContainer: expected a boolean"),
        ({"bcqueuelen": 100}, 2, "bcqueuelen"),
    ],
)
def test_macvlan_rejects_malformed_config(
    lab: CniLab, make_netns, host_links: HostLinks, extra: dict, code: int, text: str
) -> None:
    master, _ = host_links.veth_pair()
    net = Attach(lab, "mvnet", {**macvlan(lab, master), **extra})
    ns = make_netns()
    err = net.add_error(net.rt(ns.path))
    assert err.code == code and text in str(err), str(err)
    assert not link_exists("eth0", ns.name)
    assert lab.reserved_ips("mvnet") == []


def test_macvlan_status_reports_ipam_exhaustion_and_del_without_netns_releases(
    lab: CniLab, make_netns, host_links: HostLinks
) -> None:
    master, _ = host_links.veth_pair()
    only = subnet_host(lab.subnet4, 10)
    ipam = host_local(lab, routes=False, range_start=only, range_end=only)
    net = Attach(lab, "mvnet", macvlan(lab, master, ipam=ipam), version="1.1.0")
    net.status()
    ns = make_netns()
    rt = net.rt(ns.path)
    net.add(rt)
    with pytest.raises(Exception, match="no IP addresses available") as err:
        net.status()
    assert err.value.code == 50  # type: ignore[attr-defined]

    net.delete(net.rt("", container_id=rt.container_id))  # CNI_NETNS empty: IPAM DEL still runs
    assert lab.reserved_ips("mvnet") == []
    net.status()
