"""The runtime library driving Debian's Go reference plugins in real namespaces.

A bridge + host-local + tuning chain must give the namespace an address
and a default route that carries packets; CHECK passes; DEL removes the
interface and releases the IP; a second DEL succeeds.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from pycni.runtime import CniConfig, RuntimeConf, load_network_conf
from pycni.spec.errors import CniError
from tests.support.cnilab import CniLab
from tests.support.host import ip_json, link_exists, ping, run

FIXTURES = Path(__file__).parent / "fixtures"

# Debian's plugins (1.1.1) speak up to 1.0.0; cover the result shapes they emit.
VERSIONS = ["0.3.1", "0.4.0", "1.0.0"]


def tuning() -> dict:
    # a per-namespace sysctl: proves tuning ran inside the pod's netns
    return {"type": "tuning", "sysctl": {"net.core.somaxconn": "512"}}


def somaxconn(netns: str) -> str:
    return run("cat", "/proc/sys/net/core/somaxconn", netns=netns).stdout.strip()


def runtime(lab: CniLab) -> CniConfig:
    return CniConfig(lab.cni_path, cache_dir=str(lab.cache_dir))


@pytest.mark.parametrize("version", VERSIONS)
def test_bridge_hostlocal_tuning_add_check_del(lab: CniLab, make_netns, version: str) -> None:
    lab.write_conflist("pynet", [lab.bridge_plugin(), tuning()], version=version)
    netlist = load_network_conf(str(lab.conf_dir), "pynet")
    ns = make_netns()
    rt = RuntimeConf(container_id="ctr-" + ns.name[-8:], netns=ns.path, ifname="eth0")
    cni = runtime(lab)

    result = cni.add_network_list(netlist, rt)

    wire = result.to_wire()
    assert wire["cniVersion"] == version
    (container_ip,) = [str(ip.address.ip) for ip in result.ips]
    addrs = ip_json("addr", "show", "dev", "eth0", netns=ns.name)
    assert container_ip in [a["local"] for a in addrs[0]["addr_info"]]
    routes = ip_json("route", "show", "default", netns=ns.name)
    assert routes and routes[0]["gateway"] == lab.gateway4
    # tuning ran after bridge, inside the pod
    assert somaxconn(ns.name) == "512"
    # packets, not config: the gateway on the bridge answers
    assert ping(lab.gateway4, ns.name)
    assert lab.reserved_ips("pynet") == [container_ip]

    if version != "0.3.1":
        cni.check_network_list(netlist, rt)

    cni.del_network_list(netlist, rt)
    assert not link_exists("eth0", ns.name)
    assert lab.reserved_ips("pynet") == []
    assert list((lab.cache_dir / "results").iterdir()) == []
    cni.del_network_list(netlist, rt)  # idempotent


def test_two_pods_on_one_bridge_reach_each_other_v4_and_v6(lab: CniLab, make_netns) -> None:
    lab.write_conflist("pynet", [lab.bridge_plugin(ipv6=True)])
    netlist = load_network_conf(str(lab.conf_dir), "pynet")
    cni = runtime(lab)
    pods = []
    for _ in range(2):
        ns = make_netns()
        rt = RuntimeConf(container_id=ns.name, netns=ns.path, ifname="eth0")
        result = cni.add_network_list(netlist, rt)
        pods.append((ns, rt, {ip.address.version: str(ip.address.ip) for ip in result.ips}))
    (ns_a, _, _), (_, _, ips_b) = pods
    assert ping(ips_b[4], ns_a.name)
    # IPv6 DAD may take a moment after the link comes up
    assert ping(ips_b[6], ns_a.name, count=3) or ping(ips_b[6], ns_a.name, count=3)
    for _ns, rt, _ in pods:
        cni.del_network_list(netlist, rt)
    assert lab.reserved_ips("pynet") == []


def test_check_detects_removed_address(lab: CniLab, make_netns) -> None:
    lab.write_conflist("pynet", [lab.bridge_plugin()])
    netlist = load_network_conf(str(lab.conf_dir), "pynet")
    ns = make_netns()
    rt = RuntimeConf(container_id=ns.name, netns=ns.path, ifname="eth0")
    cni = runtime(lab)
    result = cni.add_network_list(netlist, rt)
    run("ip", "addr", "del", str(result.ips[0].address), "dev", "eth0", netns=ns.name)
    with pytest.raises(CniError) as err:
        cni.check_network_list(netlist, rt)
    assert "bridge" in str(err.value)
    cni.del_network_list(netlist, rt)


def test_result_cache_layout_matches_libcni(lab: CniLab, make_netns) -> None:
    path = lab.write_conflist("pynet", [lab.bridge_plugin()])
    netlist = load_network_conf(str(lab.conf_dir), "pynet")
    ns = make_netns()
    rt = RuntimeConf(container_id="abc123", netns=ns.path, ifname="eth0", args=(("IgnoreUnknown", "1"),),
                     capability_args={"portMappings": []})
    cni = runtime(lab)
    result = cni.add_network_list(netlist, rt)

    cache_file = lab.cache_dir / "results" / "pynet-abc123-eth0"
    assert oct(cache_file.stat().st_mode & 0o777) == "0o600"
    entry = json.loads(cache_file.read_text())
    assert entry["kind"] == "cniCacheV1"
    assert entry["containerId"] == "abc123" and entry["ifName"] == "eth0" and entry["networkName"] == "pynet"
    assert entry["netns"] == ns.path
    assert entry["cniArgs"] == [["IgnoreUnknown", "1"]]
    assert base64.b64decode(entry["config"]) == path.read_bytes()
    assert entry["result"]["ips"][0]["address"] == str(result.ips[0].address)
    assert cni.get_network_list_cached_result(netlist, rt) == result
    cni.del_network_list(netlist, rt)
    assert not cache_file.exists()


def test_failing_plugin_mid_chain_surfaces_code_and_message(lab: CniLab, make_netns) -> None:
    lab.install_python_plugin("fail", FIXTURES / "failing_plugin.py")
    failing = {"type": "fail", "failCode": 11, "failMsg": "upstream not ready", "failDetails": "retry in 5s"}
    lab.write_conflist("pynet", [lab.bridge_plugin(), failing, tuning()])
    netlist = load_network_conf(str(lab.conf_dir), "pynet")
    ns = make_netns()
    rt = RuntimeConf(container_id=ns.name, netns=ns.path, ifname="eth0")
    cni = runtime(lab)

    with pytest.raises(CniError) as err:
        cni.add_network_list(netlist, rt)
    assert err.value.code == 11
    assert "upstream not ready" in str(err.value)
    assert 'type="fail"' in str(err.value)
    # the chain stopped: tuning never ran
    assert somaxconn(ns.name) != "512"

    # Per the spec the runtime must DEL after a failed ADD; that cleans up.
    cni.del_network_list(netlist, rt)
    assert not link_exists("eth0", ns.name)
    assert lab.reserved_ips("pynet") == []


def test_go_plugin_error_keeps_its_code(lab: CniLab, make_netns) -> None:
    bad = lab.bridge_plugin()
    bad["ipam"]["ranges"] = [[{"subnet": "10.0.0.0/33"}]]
    lab.write_conflist("pynet", [bad])
    netlist = load_network_conf(str(lab.conf_dir), "pynet")
    ns = make_netns()
    rt = RuntimeConf(container_id=ns.name, netns=ns.path, ifname="eth0")
    cni = runtime(lab)
    with pytest.raises(CniError) as err:
        cni.add_network_list(netlist, rt)
    assert err.value.code == 999  # what Go host-local uses for a bad CIDR
    assert "10.0.0.0/33" in str(err.value)
    # Go bridge 1.1.1 leaves its veth behind when IPAM fails and rejects this
    # config on DEL too; the namespace's removal (fixture) cleans it up.


def test_del_after_netns_is_gone_releases_ip(lab: CniLab, make_netns) -> None:
    lab.write_conflist("pynet", [lab.bridge_plugin()])
    netlist = load_network_conf(str(lab.conf_dir), "pynet")
    ns = make_netns()
    rt = RuntimeConf(container_id=ns.name, netns=ns.path, ifname="eth0")
    cni = runtime(lab)
    cni.add_network_list(netlist, rt)
    run("ip", "netns", "delete", ns.name)
    cni.del_network_list(netlist, rt)
    assert lab.reserved_ips("pynet") == []
    assert not os.path.exists(ns.path)
