"""pycni's tap plugin: a persistent tap device in the pod's netns."""

from __future__ import annotations

import pytest

from tests.integration.linkplugin_helpers import VERSIONS, Attach, addresses, host_local, link_details
from tests.support.cnilab import CniLab, use_free_subnets
from tests.support.host import ip_json, link_exists, run


@pytest.fixture(autouse=True)
def _free_subnets(lab: CniLab) -> None:
    use_free_subnets(lab)


def host_macs() -> set[str]:
    return {link.get("address", "") for link in ip_json("link", "show")}


def tap(lab: CniLab, **extra: object) -> dict:
    lab.install_pycni("tap", "host-local")
    return {"type": "tap", **extra}


@pytest.mark.parametrize("version", VERSIONS)
def test_tap_created_in_netns_with_ipam(lab: CniLab, make_netns, version: str) -> None:
    net = Attach(lab, "tapnet", tap(lab, mtu=1300, mac="02:00:00:00:7a:01", ipam=host_local(lab)), version)
    ns = make_netns()
    rt = net.rt(ns.path)

    result = net.add(rt)

    (iface,) = result.interfaces
    assert (iface.name, iface.mac, iface.sandbox) == ("eth0", "02:00:00:00:7a:01", ns.path)
    details = link_details("eth0", ns.name)
    assert details["linkinfo"]["info_kind"] == "tun"
    assert details["linkinfo"]["info_data"]["type"] == "tap"
    assert details["mtu"] == 1300 and "UP" in details["flags"]
    assert addresses("eth0", ns.name) == [str(result.ips[0].address)]
    assert "02:00:00:00:7a:01" not in host_macs()  # made in the pod, not on the host
    if version != "0.3.1":
        net.check(rt)

    net.delete(rt)
    assert not link_exists("eth0", ns.name)
    assert lab.reserved_ips("tapnet") == []
    net.delete(rt)


def test_tap_l2_multiqueue_owner_group(lab: CniLab, make_netns) -> None:
    net = Attach(lab, "tapnet", tap(lab, multiQueue=True, owner=1000, group=1001))
    ns = make_netns()
    rt = net.rt(ns.path, ifname="tap0")

    result = net.add(rt)

    assert result.ips == ()
    info = link_details("tap0", ns.name)["linkinfo"]["info_data"]
    assert info["multi_queue"] is True
    sysfs = {key: run("cat", f"/sys/class/net/tap0/{key}", netns=ns.name).stdout.strip() for key in ("owner", "group")}
    assert sysfs == {"owner": "1000", "group": "1001"}
    assert info["vnet_hdr"] is True
    net.check(rt)
    net.delete(rt)
    assert not link_exists("tap0", ns.name)


def test_tap_joins_a_bridge_in_the_pod(lab: CniLab, make_netns) -> None:
    ns = make_netns()
    run("ip", "link", "add", "br0", "type", "bridge", netns=ns.name)
    net = Attach(lab, "tapnet", tap(lab, bridge="br0"))
    rt = net.rt(ns.path)
    net.add(rt)
    assert link_details("eth0", ns.name)["master"] == "br0"
    net.delete(rt)
    assert not link_exists("eth0", ns.name) and link_exists("br0", ns.name)


def test_tap_bridge_must_be_a_bridge_in_the_pod(lab: CniLab, make_netns) -> None:
    ns = make_netns()
    run("ip", "link", "add", "notbr0", "type", "veth", "peer", "name", "notbr1", netns=ns.name)
    for bridge, text in (
        ("br9", 'bridge: link "br9" not found in the container netns'),
        ("notbr0", 'bridge: link "notbr0" is not a bridge'),
    ):
        net = Attach(lab, f"tapnet{bridge}", tap(lab, bridge=bridge, ipam=host_local(lab)))
        err = net.add_error(net.rt(ns.path))
        assert err.code == 7 and text in str(err), str(err)
        assert not link_exists("eth0", ns.name)
        assert lab.reserved_ips(f"tapnet{bridge}") == []


def test_tap_check_detects_a_replaced_interface(lab: CniLab, make_netns) -> None:
    net = Attach(lab, "tapnet", tap(lab, ipam=host_local(lab)))
    ns = make_netns()
    rt = net.rt(ns.path)
    net.add(rt)
    run("ip", "link", "delete", "eth0", netns=ns.name)
    run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1", netns=ns.name)
    with pytest.raises(Exception, match="kind 'veth', expected 'tun'"):
        net.check(rt)
    run("ip", "link", "delete", "eth0", netns=ns.name)
    net.delete(rt)
    assert lab.reserved_ips("tapnet") == []


@pytest.mark.parametrize(
    ("extra", "code", "text"),
    [
        ({"mtu": 70000}, 7, "mtu: 70000 is out of range"),
        ({"owner": -1}, 7, "owner: expected a non-negative integer"),
        ({"group": 2**32}, 7, "group: 4294967296 does not fit in 32 bits"),
        ({"multiQueue": "true"}, 7, "multiQueue: expected a boolean"),
        ({"bridge": "br/0"}, 7, "bridge: 'br/0' is not a valid interface name"),
        ({"mac": "02:00:00:00:00"}, 7, "mac: "),
    ],
)
def test_tap_rejects_malformed_config(lab: CniLab, make_netns, extra: dict, code: int, text: str) -> None:
    net = Attach(lab, "tapnet", tap(lab, **extra))
    ns = make_netns()
    err = net.add_error(net.rt(ns.path))
    assert err.code == code and text in str(err), str(err)
    assert not link_exists("eth0", ns.name)
