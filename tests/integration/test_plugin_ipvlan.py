"""pycni's ipvlan plugin. This kernel may lack ipvlan: then ADD must fail cleanly, reserving nothing."""

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
)
from tests.support.cnilab import CniLab, use_free_subnets
from tests.support.host import link_exists, ping

NO_IPVLAN = "this kernel lacks ipvlan (CONFIG_IPVLAN): pycni.net raises UnsupportedKernelFeature"


@pytest.fixture(autouse=True)
def _free_subnets(lab: CniLab) -> None:
    use_free_subnets(lab)


@pytest.fixture
def host_links() -> Iterator[HostLinks]:
    links = HostLinks()
    yield links
    links.cleanup()


@pytest.fixture
def has_ipvlan(make_netns) -> bool:
    return kernel_supports("ipvlan", make_netns().name)


def ipvlan(lab: CniLab, master: str, **extra: object) -> dict:
    lab.install_pycni("ipvlan", "host-local")
    return {"type": "ipvlan", "master": master, "ipam": host_local(lab, routes=False), **extra}


def test_ipvlan_add_fails_cleanly_without_kernel_support(
    lab: CniLab, make_netns, host_links: HostLinks, has_ipvlan: bool
) -> None:
    if has_ipvlan:
        pytest.skip("this kernel supports ipvlan")
    master, _ = host_links.veth_pair()
    net = Attach(lab, "ipvnet", ipvlan(lab, master))
    ns = make_netns()
    rt = net.rt(ns.path)
    err = net.add_error(rt)
    assert "kernel does not support link type 'ipvlan'" in str(err)
    assert not link_exists("eth0", ns.name)
    assert lab.reserved_ips("ipvnet") == []
    net.delete(rt)  # the runtime's DEL after a failed ADD succeeds


@pytest.mark.parametrize("version", VERSIONS)
def test_ipvlan_pods_on_one_master_reach_each_other(
    lab: CniLab, make_netns, host_links: HostLinks, has_ipvlan: bool, version: str
) -> None:
    if not has_ipvlan:
        pytest.skip(NO_IPVLAN)
    master, _ = host_links.veth_pair()
    net = Attach(lab, "ipvnet", ipvlan(lab, master, mode="l2"), version)
    pods = []
    for _ in range(2):
        ns = make_netns()
        rt = net.rt(ns.path)
        pods.append((ns, rt, net.add(rt)))
    for ns, _, result in pods:
        details = link_details("eth0", ns.name)
        assert details["linkinfo"]["info_kind"] == "ipvlan"
        assert details["address"] == link_details(master, None)["address"]  # ipvlan shares the master's MAC
        assert result.interfaces[0].sandbox == ns.path
    (ns_a, rt_a, _), (_, _, result_b) = pods
    assert ping(str(result_b.ips[0].address.ip), ns_a.name)
    if version != "0.3.1":
        net.check(rt_a)
    for ns, rt, _ in pods:
        net.delete(rt)
        assert not link_exists("eth0", ns.name)
    assert lab.reserved_ips("ipvnet") == []


@pytest.mark.parametrize(
    ("extra", "code", "text"),
    [
        ({"mode": "l4"}, 7, "mode: 'l4' is not one of l2, l3, l3s"),
        ({"master": "nosuch0"}, 7, 'master: link "nosuch0" not found'),
        ({"master": "bad name"}, 7, "master: 'bad name' is not a valid interface name"),
        ({"ipam": {}}, 7, "ipam: ipvlan requires an IPAM configuration"),
        ({"mtu": 100000}, 7, "mtu: 100000 is out of range"),
    ],
)
def test_ipvlan_rejects_malformed_config(
    lab: CniLab, make_netns, host_links: HostLinks, extra: dict, code: int, text: str
) -> None:
    master, _ = host_links.veth_pair()
    net = Attach(lab, "ipvnet", {**ipvlan(lab, master), **extra})
    ns = make_netns()
    err = net.add_error(net.rt(ns.path))
    assert err.code == code and text in str(err), str(err)
    assert lab.reserved_ips("ipvnet") == []
