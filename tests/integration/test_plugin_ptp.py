"""pycni's ptp plugin in real namespaces: a routed veth pair, packets to the host, clean DEL."""

from __future__ import annotations

import shlex
import subprocess
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
from tests.support.host import ip_json, link_exists, ping, run
from tests.support.subnets import free_subnet4


@pytest.fixture(autouse=True)
def _free_subnets(lab: CniLab) -> None:
    use_free_subnets(lab)


@pytest.fixture
def host_links() -> Iterator[HostLinks]:
    links = HostLinks()
    yield links
    links.cleanup()


def ptp(lab: CniLab, *, v6: bool = False, **extra: object) -> dict:
    lab.install_pycni("ptp", "host-local")
    return {"type": "ptp", "ipam": host_local(lab, v6=v6, range_end=subnet_host(lab.subnet4, 100)), **extra}


def host_veths_into(netns: str) -> list[str]:
    """Host links whose veth peer lives in ``netns``."""
    ids = {n["name"]: n.get("id") for n in ip_json("netns", "list")}
    nsid = ids.get(netns)
    if nsid is None:
        return []
    return [link["ifname"] for link in ip_json("link", "show", "type", "veth") if link.get("link_netnsid") == nsid]


def host_routes_to(ip: str) -> list[dict]:
    family = "-6" if ":" in ip else "-4"
    return ip_json(family, "route", "show", ip)


@pytest.mark.parametrize("version", VERSIONS)
def test_ptp_add_check_del(lab: CniLab, make_netns, version: str) -> None:
    net = Attach(lab, "ptpnet", ptp(lab, mtu=1400), version)
    ns = make_netns()
    rt = net.rt(ns.path)

    result = net.add(rt)

    assert result.to_wire()["cniVersion"] == version
    host_veth, container = result.interfaces
    assert host_veth.name.startswith("veth") and not host_veth.sandbox
    assert (container.name, container.sandbox) == ("eth0", ns.path)
    (ipc,) = result.ips
    assert ipc.interface == 1 and str(ipc.gateway) == lab.gateway4
    pod_ip = str(ipc.address.ip)
    details = link_details("eth0", ns.name)
    assert details["linkinfo"]["info_kind"] == "veth" and details["mtu"] == 1400
    assert details["address"] == container.mac
    # the container has no on-link subnet: a /32 to the gateway and the subnet via it
    routes = {r["dst"]: r for r in ip_json("-4", "route", "show", netns=ns.name)}
    assert routes[f"{lab.gateway4}"]["scope"] == "link"
    assert routes[lab.subnet4]["gateway"] == lab.gateway4
    assert routes["default"]["gateway"] == lab.gateway4
    # the host side: the gateway on the host veth and a route to the pod
    assert f"{lab.gateway4}/32" in addresses(host_veth.name, None)
    assert [r["dev"] for r in host_routes_to(pod_ip)] == [host_veth.name]
    assert ping(lab.gateway4, ns.name)
    assert lab.reserved_ips("ptpnet") == [pod_ip]

    if version != "0.3.1":
        net.check(rt)

    net.delete(rt)
    assert not link_exists("eth0", ns.name)
    assert not link_exists(host_veth.name)
    assert host_routes_to(pod_ip) == []
    assert lab.reserved_ips("ptpnet") == []
    net.delete(rt)  # idempotent


def test_ptp_pod_reaches_host_addresses_v4_and_v6(lab: CniLab, make_netns, host_links: HostLinks) -> None:
    # A host address of our own on a veth pair in the host netns: pods reach the host, not just the gateway.
    a, _ = host_links.veth_pair()
    host4 = subnet_host(lab.subnet4, 200)
    host6 = subnet_host(lab.subnet6, 0x200)
    run("ip", "addr", "add", f"{host4}/32", "dev", a)
    run("ip", "-6", "addr", "add", f"{host6}/128", "dev", a, "nodad")
    net = Attach(lab, "ptpnet", ptp(lab, v6=True))
    ns = make_netns()
    rt = net.rt(ns.path)
    result = net.add(rt)

    gateways = {ipc.address.version: str(ipc.gateway) for ipc in result.ips}
    assert gateways[4] == lab.gateway4
    assert ping(gateways[4], ns.name)
    assert ping(host4, ns.name)
    # The host veth's gateway address may still be in DAD for a moment.
    assert ping(gateways[6], ns.name, count=3) or ping(gateways[6], ns.name, count=3)
    assert ping(host6, ns.name, count=3)
    net.check(rt)

    net.delete(rt)
    assert lab.reserved_ips("ptpnet") == []
    for ipc in result.ips:
        assert host_routes_to(str(ipc.address.ip)) == []


def test_two_ptp_pods_reach_each_other_through_the_host(lab: CniLab, make_netns) -> None:
    net = Attach(lab, "ptpnet", ptp(lab))
    pods = []
    for _ in range(2):
        ns = make_netns()
        rt = net.rt(ns.path)
        pods.append((ns, rt, str(net.add(rt).ips[0].address.ip)))
    (ns_a, _, _), (_, _, ip_b) = pods
    assert ping(ip_b, ns_a.name)
    for _, rt, _ in pods:
        net.delete(rt)
    assert lab.reserved_ips("ptpnet") == []


def test_ptp_check_detects_removed_route_and_address(lab: CniLab, make_netns) -> None:
    net = Attach(lab, "ptpnet", ptp(lab))
    ns = make_netns()
    rt = net.rt(ns.path)
    result = net.add(rt)
    net.check(rt)

    run("ip", "route", "del", "default", netns=ns.name)
    with pytest.raises(Exception, match=r"route 0\.0\.0\.0/0 via .* not found"):
        net.check(rt)

    run("ip", "addr", "del", str(result.ips[0].address), "dev", "eth0", netns=ns.name)
    with pytest.raises(Exception, match=r"address .* not found on interface 'eth0'"):
        net.check(rt)
    net.delete(rt)
    assert lab.reserved_ips("ptpnet") == []


def test_ptp_del_after_netns_is_gone_releases_the_ip(lab: CniLab, make_netns) -> None:
    net = Attach(lab, "ptpnet", ptp(lab))
    ns = make_netns()
    rt = net.rt(ns.path)
    result = net.add(rt)
    host_veth = result.interfaces[0].name
    run("ip", "netns", "delete", ns.name)  # the kernel destroys the pair asynchronously
    net.delete(rt)
    assert lab.reserved_ips("ptpnet") == []
    assert not link_exists(host_veth)
    assert host_routes_to(str(result.ips[0].address.ip)) == []


def test_ptp_del_removes_the_host_veth_of_a_netns_still_held_elsewhere(lab: CniLab, make_netns) -> None:
    # The runtime removed the netns path, but a process still holds the namespace: the
    # pair lives on, and DEL finds the host end through the prevResult.
    net = Attach(lab, "ptpnet", ptp(lab))
    ns = make_netns()
    rt = net.rt(ns.path)
    holder = subprocess.Popen(["ip", "netns", "exec", ns.name, "sleep", "60"])
    try:
        result = net.add(rt)
        host_veth = result.interfaces[0].name
        run("ip", "netns", "delete", ns.name)
        assert link_exists(host_veth)
        net.delete(rt)
        assert not link_exists(host_veth)
        assert lab.reserved_ips("ptpnet") == []
    finally:
        holder.kill()
        holder.wait()


def test_ptp_failed_add_leaves_nothing(lab: CniLab, make_netns) -> None:
    net = Attach(lab, "ptpnet", ptp(lab))
    ns = make_netns()
    run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1", netns=ns.name)
    before = {link["ifname"] for link in ip_json("link", "show", netns=ns.name)}

    err = net.add_error(net.rt(ns.path))

    assert "eth0" in str(err) and "already exists" in str(err)
    assert {link["ifname"] for link in ip_json("link", "show", netns=ns.name)} == before
    assert host_veths_into(ns.name) == []
    assert lab.reserved_ips("ptpnet") == []


def test_ptp_failed_configure_removes_the_veth_and_releases_the_ip(lab: CniLab, make_netns) -> None:
    # A route via a gateway that is not on-link: ConfigureIface fails after the veth and IPAM ADD.
    conf = ptp(lab)
    conf["ipam"]["routes"] = [{"dst": "198.51.100.0/24", "gw": "203.0.113.1"}]
    net = Attach(lab, "ptpnet", conf)
    ns = make_netns()

    err = net.add_error(net.rt(ns.path))

    assert "198.51.100.0/24" in str(err)
    assert not link_exists("eth0", ns.name)
    assert host_veths_into(ns.name) == []
    assert lab.reserved_ips("ptpnet") == []


@pytest.mark.parametrize(
    ("extra", "code", "text"),
    [
        ({"mtu": -1}, 7, "mtu: expected a non-negative integer"),
        ({"mtu": "1500"}, 7, "mtu: expected a non-negative integer"),
        ({"ipMasq": "yes"}, 7, "ipMasq: expected a boolean"),
        ({"ipMasqBackend": "pf"}, 7, "ipMasqBackend: 'pf' is not one of"),
        ({"ipam": {}}, 7, "ipam: ptp requires an IPAM configuration"),
        ({"ipam": {"type": "../host-local"}}, 7, "ipam.type"),
    ],
)
def test_ptp_rejects_malformed_config(lab: CniLab, make_netns, extra: dict, code: int, text: str) -> None:
    net = Attach(lab, "ptpnet", {**ptp(lab), **extra})
    ns = make_netns()
    err = net.add_error(net.rt(ns.path))
    assert err.code == code and text in str(err)
    assert not link_exists("eth0", ns.name)
    assert lab.reserved_ips("ptpnet") == []


def test_ptp_rejects_overlong_ifname(lab: CniLab, make_netns) -> None:
    net = Attach(lab, "ptpnet", ptp(lab))
    ns = make_netns()
    err = net.add_error(net.rt(ns.path, ifname="a" * 16))
    assert err.code == 4 and "too long" in str(err)


def _masq_rules_for(ip: str) -> list[str]:
    """Host rules (either backend) that name ``ip`` as a source."""
    found = []
    nft = run("nft", "list", "table", "inet", "cni_plugins_masquerade", check=False)
    found += [line.strip() for line in nft.stdout.splitlines() if f"saddr {ip} " in line]
    for tool in ("iptables", "ip6tables"):
        out = run(tool, "-t", "nat", "-S", "POSTROUTING", check=False).stdout
        found += [line for line in out.splitlines() if f"-s {ip}/" in line]
    return found


def _backend_usable(backend: str) -> bool:
    if backend == "iptables":
        return run("iptables", "-t", "nat", "-S", check=False).returncode == 0
    return run("nft", "list", "tables", check=False).returncode == 0


@pytest.mark.parametrize("backend", ["nftables", "iptables"])
def test_ptp_ip_masq_reaches_an_outside_network_that_has_no_route_back(
    lab: CniLab, make_netns, host_links: HostLinks, backend: str
) -> None:
    if not _backend_usable(backend):
        pytest.skip(f"{backend} is not usable on this host")
    # "Outside": a netns on a veth from the host, with no route to the pod subnet. Only a
    # masqueraded ping (source = the host's outside address) gets an answer.
    outside = make_netns()
    ext_host, ext = host_links.veth_pair(b_netns=outside.name)
    ext_net = free_subnet4()
    run("ip", "addr", "add", f"{ext_net[1]}/24", "dev", ext_host)
    run("ip", "addr", "add", f"{ext_net[2]}/24", "dev", ext, netns=outside.name)
    net = Attach(lab, "ptpnet", ptp(lab, ipMasq=True, ipMasqBackend=backend))
    ns = make_netns()
    rt = net.rt(ns.path)

    result = net.add(rt)

    pod_ip = str(result.ips[0].address.ip)
    assert _masq_rules_for(pod_ip)
    assert ping(str(ext_net[2]), ns.name)
    net.check(rt)

    net.delete(rt)
    assert _masq_rules_for(pod_ip) == []
    assert lab.reserved_ips("ptpnet") == []


def test_ptp_check_detects_a_missing_masquerade_rule_and_del_cleans_up_without_netns(lab: CniLab, make_netns) -> None:
    if not _backend_usable("iptables"):
        pytest.skip("iptables is not usable on this host")
    net = Attach(lab, "ptpnet", ptp(lab, ipMasq=True, ipMasqBackend="iptables"))
    ns = make_netns()
    rt = net.rt(ns.path)
    result = net.add(rt)
    pod_ip = str(result.ips[0].address.ip)
    (jump,) = _masq_rules_for(pod_ip)
    run("iptables", "-t", "nat", *shlex.split(jump.replace("-A ", "-D ", 1)))
    with pytest.raises(Exception, match=f"no IP masquerade rule for {pod_ip}"):
        net.check(rt)
    net.delete(rt)

    # The rules go even when the netns is gone (addresses from the prevResult).
    result = net.add(rt)
    pod_ip = str(result.ips[0].address.ip)
    assert _masq_rules_for(pod_ip)
    run("ip", "netns", "delete", ns.name)
    net.delete(rt)
    assert _masq_rules_for(pod_ip) == []
    chain_rules = run("iptables", "-t", "nat", "-S", check=False).stdout
    assert rt.container_id not in chain_rules


def test_ptp_gc_removes_stale_masquerade_rules_and_reservations(lab: CniLab, make_netns) -> None:
    from pycni.runtime.libcni import Attachment

    net = Attach(lab, "ptpnet", ptp(lab, ipMasq=True), version="1.1.0")
    pods = []
    for _ in range(2):
        ns = make_netns()
        rt = net.rt(ns.path)
        pods.append((rt, str(net.add(rt).ips[0].address.ip)))
    (keep, keep_ip), (stale, stale_ip) = pods
    # Forget the stale attachment in the runtime's cache: only the plugin's own GC can clean it up.
    (lab.cache_dir / "results" / f"ptpnet-{stale.container_id}-eth0").unlink()

    net.cni.gc_network_list(net.netlist, [Attachment(keep.container_id, "eth0")])

    assert _masq_rules_for(keep_ip) and _masq_rules_for(stale_ip) == []
    assert lab.reserved_ips("ptpnet") == [keep_ip]
    net.delete(keep)
    net.status()
