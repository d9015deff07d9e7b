"""pycni's host-device plugin: lend a host link (a veth end of ours) to a pod and take it back."""

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


def static_ipam(lab: CniLab, n: int = 10) -> dict:
    return {"type": "static", "addresses": [{"address": f"{subnet_host(lab.subnet4, n)}/24"}]}


def host_device(lab: CniLab, **selector: object) -> dict:
    lab.install_pycni("host-device", "static", "host-local")
    return {"type": "host-device", **selector}


@pytest.mark.parametrize("version", VERSIONS)
def test_host_device_moves_a_link_in_and_back_out(lab: CniLab, make_netns, host_links: HostLinks, version: str) -> None:
    pod, peer_ns = make_netns(), make_netns()
    device, peer = host_links.veth_pair(b_netns=peer_ns.name)
    peer_ip = subnet_host(lab.subnet4, 11)
    run("ip", "addr", "add", f"{peer_ip}/24", "dev", peer, netns=peer_ns.name)
    mac = link_details(device, None)["address"]
    net = Attach(lab, "hdnet", host_device(lab, device=device, ipam=static_ipam(lab)), version)
    rt = net.rt(pod.path, ifname="net1")

    result = net.add(rt)

    (iface,) = result.interfaces
    assert (iface.name, iface.mac, iface.sandbox) == ("net1", mac, pod.path)
    assert not link_exists(device)
    details = link_details("net1", pod.name)
    assert details["ifalias"] == device and "UP" in details["flags"]
    assert addresses("net1", pod.name) == [f"{subnet_host(lab.subnet4, 10)}/24"]
    assert ping(peer_ip, pod.name)
    if version != "0.3.1":
        net.check(rt)

    net.delete(rt)
    assert not link_exists("net1", pod.name)
    details = link_details(device, None)
    assert details["address"] == mac and "ifalias" not in details
    net.delete(rt)  # idempotent
    assert link_exists(device)


def test_host_device_by_mac_without_ipam(lab: CniLab, make_netns, host_links: HostLinks) -> None:
    pod = make_netns()
    device, _ = host_links.veth_pair()
    mac = link_details(device, None)["address"]
    net = Attach(lab, "hdnet", host_device(lab, hwaddr=mac.upper()))
    rt = net.rt(pod.path)

    result = net.add(rt)

    assert result.ips == () and result.interfaces[0].mac == mac
    assert "UP" in link_details("eth0", pod.name)["flags"]
    net.check(rt)
    net.delete(rt)
    assert link_exists(device) and not link_exists("eth0", pod.name)


def test_host_device_by_kernel_path(lab: CniLab, make_netns, host_links: HostLinks) -> None:
    import os

    pod = make_netns()
    device, _ = host_links.veth_pair()
    # A virtual device's sysfs directory is /sys/devices/virtual/net/<name>; its "net" entry is the
    # parent of kernelpath, so point kernelpath at a directory whose net/ lists the device.
    path = os.path.realpath(f"/sys/class/net/{device}")
    parent = os.path.dirname(os.path.dirname(path))  # /sys/devices/virtual
    assert os.path.isdir(os.path.join(parent, "net", device))
    net = Attach(lab, "hdnet", host_device(lab, kernelpath=parent, ipam=static_ipam(lab)))
    rt = net.rt(pod.path)
    # /sys/devices/virtual/net holds every virtual link: the first that exists is taken, so only
    # assert that the plugin found *a* device and gave it back.
    result = net.add(rt)
    taken = link_details("eth0", pod.name)["ifalias"]
    assert result.interfaces[0].name == "eth0" and taken
    net.delete(rt)
    assert link_exists(taken)


def test_host_device_del_when_netns_is_gone_still_releases_ipam(lab: CniLab, make_netns, host_links: HostLinks) -> None:
    pod = make_netns()
    device, _ = host_links.veth_pair()
    net = Attach(lab, "hdnet", host_device(lab, device=device, ipam=host_local(lab)))
    rt = net.rt(pod.path)
    net.add(rt)
    assert len(lab.reserved_ips("hdnet")) == 1
    run("ip", "netns", "delete", pod.name)  # a veth dies with its namespace
    net.delete(rt)
    assert lab.reserved_ips("hdnet") == []


def test_host_device_failed_add_gives_the_device_back(lab: CniLab, make_netns, host_links: HostLinks) -> None:
    pod = make_netns()
    device, _ = host_links.veth_pair()
    ipam = {**host_local(lab, routes=False), "routes": [{"dst": "198.51.100.0/24", "gw": "203.0.113.1"}]}
    net = Attach(lab, "hdnet", host_device(lab, device=device, ipam=ipam))
    err = net.add_error(net.rt(pod.path))
    assert "198.51.100.0/24" in str(err)
    assert link_exists(device) and not link_exists("eth0", pod.name)
    assert "ifalias" not in link_details(device, None)
    assert lab.reserved_ips("hdnet") == []


def test_host_device_refuses_a_taken_ifname(lab: CniLab, make_netns, host_links: HostLinks) -> None:
    pod = make_netns()
    device, _ = host_links.veth_pair()
    run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1", netns=pod.name)
    net = Attach(lab, "hdnet", host_device(lab, device=device, ipam=host_local(lab)))
    rt = net.rt(pod.path)
    err = net.add_error(rt)
    assert "exists" in str(err)
    assert link_exists(device) and "ifalias" not in link_details(device, None)
    assert lab.reserved_ips("hdnet") == []
    net.delete(rt)  # the runtime's DEL after a failed ADD leaves the pod's own eth0 alone
    assert link_exists("eth0", pod.name)


def test_host_device_check_detects_removed_address(lab: CniLab, make_netns, host_links: HostLinks) -> None:
    pod = make_netns()
    device, _ = host_links.veth_pair()
    net = Attach(lab, "hdnet", host_device(lab, device=device, ipam=static_ipam(lab)))
    rt = net.rt(pod.path)
    result = net.add(rt)
    run("ip", "addr", "del", str(result.ips[0].address), "dev", "eth0", netns=pod.name)
    with pytest.raises(Exception, match="not found on interface 'eth0'"):
        net.check(rt)
    net.delete(rt)
    assert link_exists(device)


@pytest.mark.parametrize(
    ("selector", "code", "text"),
    [
        ({}, 7, 'specify either "device", "hwaddr", "kernelpath" or "pciBusID"'),
        ({"device": "nosuch0"}, 7, 'device: link "nosuch0" not found'),
        ({"device": "../../etc"}, 7, "device: '../../etc' is not a valid interface name"),
        ({"hwaddr": "not-a-mac"}, 7, "hwaddr: "),
        ({"kernelpath": "/etc/passwd"}, 7, "kernelpath: '/etc/passwd' must be an absolute path under /sys/devices/"),
        ({"kernelpath": "/sys/devices/../../etc"}, 7, "kernelpath:"),
        ({"pciBusID": "0000:00:1f.9"}, 7, "pciBusID: '0000:00:1f.9' is not a PCI address"),
        ({"pciBusID": "../../x"}, 7, "pciBusID:"),
        ({"pciBusID": "0000:99:00.0"}, 7, "pciBusID: failed to find a network device for PCI device 0000:99:00.0"),
    ],
)
def test_host_device_rejects_malformed_config(lab: CniLab, make_netns, selector: dict, code: int, text: str) -> None:
    net = Attach(lab, "hdnet", host_device(lab, **selector))
    ns = make_netns()
    err = net.add_error(net.rt(ns.path))
    assert err.code == code and text in str(err), str(err)
    assert not link_exists("eth0", ns.name)


def test_host_device_del_with_empty_netns_releases_ipam(lab: CniLab, make_netns, host_links: HostLinks) -> None:
    pod = make_netns()
    device, _ = host_links.veth_pair()
    net = Attach(lab, "hdnet", host_device(lab, device=device, ipam=host_local(lab)), version="1.1.0")
    rt = net.rt(pod.path)
    net.add(rt)
    net.status()
    net.delete(net.rt("", container_id=rt.container_id))  # the reference skips IPAM DEL here (cni#1167)
    assert lab.reserved_ips("hdnet") == []
    assert link_exists("eth0", pod.name)  # without a netns there is nothing to move back
    net.delete(rt)  # a DEL with the netns brings it home
    assert link_exists(device) and not link_exists("eth0", pod.name)
