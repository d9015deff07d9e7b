"""pycni's vlan plugin. This kernel may lack 802.1q: then ADD must fail cleanly, reserving nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.linkplugin_helpers import (
    VERSIONS,
    Attach,
    HostLinks,
    host_local,
    kernel_supports,
    link_details,
    subnet_host,
)
from tests.support.cnilab import CniLab, use_free_subnets
from tests.support.host import link_exists, ping, run

NO_VLAN = "this kernel lacks 802.1q VLANs (CONFIG_VLAN_8021Q): pycni.net raises UnsupportedKernelFeature"


@pytest.fixture(autouse=True)
def _free_subnets(lab: CniLab) -> None:
    use_free_subnets(lab)


@pytest.fixture
def host_links() -> Iterator[HostLinks]:
    links = HostLinks()
    yield links
    links.cleanup()


@pytest.fixture
def has_vlan(make_netns) -> bool:
    return kernel_supports("vlan", make_netns().name)


def vlan(lab: CniLab, master: str, **extra: object) -> dict:
    lab.install_pycni("vlan", "host-local")
    return {"type": "vlan", "master": master, "vlanId": 42, "ipam": host_local(lab, routes=False), **extra}


def test_vlan_add_fails_cleanly_without_kernel_support(
    lab: CniLab, make_netns, host_links: HostLinks, has_vlan: bool
) -> None:
    if has_vlan:
        pytest.skip("this kernel supports 802.1q VLANs")
    master, _ = host_links.veth_pair()
    net = Attach(lab, "vlannet", vlan(lab, master))
    ns = make_netns()
    rt = net.rt(ns.path)
    err = net.add_error(rt)
    assert "kernel does not support link type 'vlan'" in str(err)
    assert not link_exists("eth0", ns.name)
    assert lab.reserved_ips("vlannet") == []
    net.delete(rt)


@pytest.mark.parametrize("version", VERSIONS)
def test_vlan_pod_reaches_a_tagged_underlay(
    lab: CniLab, make_netns, host_links: HostLinks, has_vlan: bool, version: str
) -> None:
    if not has_vlan:
        pytest.skip(NO_VLAN)
    underlay = make_netns()
    master, peer = host_links.veth_pair(b_netns=underlay.name)
    peer_ip = subnet_host(lab.subnet4, 250)
    run("ip", "link", "add", "link", peer, "name", "v42", "type", "vlan", "id", "42", netns=underlay.name)
    run("ip", "addr", "add", f"{peer_ip}/24", "dev", "v42", netns=underlay.name)
    run("ip", "link", "set", "v42", "up", netns=underlay.name)
    net = Attach(lab, "vlannet", vlan(lab, master), version)
    ns = make_netns()
    rt = net.rt(ns.path)

    result = net.add(rt)

    details = link_details("eth0", ns.name)
    assert details["linkinfo"]["info_kind"] == "vlan" and details["linkinfo"]["info_data"]["id"] == 42
    assert result.ips[0].interface == 0
    assert ping(peer_ip, ns.name)
    if version != "0.3.1":
        net.check(rt)
    net.delete(rt)
    assert not link_exists("eth0", ns.name)
    assert lab.reserved_ips("vlannet") == []
    net.delete(rt)


@pytest.mark.parametrize(
    ("extra", "code", "text"),
    [
        ({"vlanId": 5000}, 7, "vlanId: 5000 is out of range (0-4094)"),
        ({"vlanId": -1}, 7, "vlanId: -1 is out of range (0-4094)"),
        ({"vlanId": "42"}, 7, "vlanId: expected an integer"),
        ({"master": ""}, 7, "master: missing"),
        ({"master": "nosuch0"}, 7, 'master: link "nosuch0" not found'),
        ({"master": "x/y"}, 7, "master: 'x/y' is not a valid interface name"),
        ({"mtu": -1}, 7, "mtu: expected a non-negative integer"),
        ({"mtu": 9000}, 7, "mtu: 9000 is larger than the MTU of master"),
        ({"ipam": {}}, 7, "ipam: vlan requires an IPAM configuration"),
    ],
)
def test_vlan_rejects_malformed_config(
    lab: CniLab, make_netns, host_links: HostLinks, extra: dict, code: int, text: str
) -> None:
    master, _ = host_links.veth_pair()
    net = Attach(lab, "vlannet", {**vlan(lab, master), **extra})
    ns = make_netns()
    err = net.add_error(net.rt(ns.path))
    assert err.code == code and text in str(err), str(err)
    assert lab.reserved_ips("vlannet") == []
