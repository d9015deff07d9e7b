"""pycni's loopback plugin in real namespaces: lo comes up (and goes down on DEL), results match Go's."""

from __future__ import annotations

import re
from typing import Any

import pytest

from pycni.runtime import CniConfig, RuntimeConf, load_network_conf
from pycni.spec.errors import CniError
from tests.support.cnilab import GO_PLUGIN_DIR, CniLab
from tests.support.host import ip_json, ping, run
from tests.support.netns import Netns

VERSIONS = ["0.2.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]


def lo_is_up(ns: Netns) -> bool:
    return "UP" in ip_json("link", "show", "dev", "lo", netns=ns.name)[0]["flags"]


def fresh_netns(make_netns: Any) -> Netns:
    ns: Netns = make_netns()
    run("ip", "link", "set", "lo", "down", netns=ns.name)  # the fixture sets it up; start from a new pod's state
    return ns


def network(lab: CniLab, plugins: list[dict[str, Any]], version: str, cni_path: list[str] | None = None) -> Any:
    name = f"lo-{lab.bridge}"
    lab.write_conflist(name, plugins, version=version)
    return load_network_conf(str(lab.conf_dir), name), CniConfig(cni_path or lab.cni_path, cache_dir=str(lab.cache_dir))


@pytest.fixture
def pycni_lab(lab: CniLab) -> CniLab:
    lab.install_pycni("loopback", "bridge", "host-local")
    return lab


@pytest.mark.parametrize("version", VERSIONS)
def test_add_check_del(pycni_lab: CniLab, make_netns: Any, version: str) -> None:
    netlist, cni = network(pycni_lab, [{"type": "loopback"}], version)
    ns = fresh_netns(make_netns)
    rt = RuntimeConf(container_id=ns.name, netns=ns.path, ifname="eth0")
    assert not ping("127.0.0.1", ns.name)

    wire = cni.add_network_list(netlist, rt).to_wire()

    assert lo_is_up(ns)
    assert ping("127.0.0.1", ns.name)
    if version == "0.2.0":
        assert wire == {"cniVersion": "0.2.0", "ip4": {"ip": "127.0.0.1/8"}, "ip6": {"ip": "::1/128"}}
    else:
        assert wire["interfaces"] == [{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": ns.path}]
        assert [(ip["address"], ip["interface"]) for ip in wire["ips"]] == [("127.0.0.1/8", 0), ("::1/128", 0)]
    if version not in ("0.2.0", "0.3.1"):
        cni.check_network_list(netlist, rt)

    cni.del_network_list(netlist, rt)
    assert not lo_is_up(ns)
    cni.del_network_list(netlist, rt)
    run("ip", "netns", "delete", ns.name)
    cni.del_network_list(netlist, rt)  # the namespace is gone: still success


def test_same_result_as_the_go_plugin(pycni_lab: CniLab, make_netns: Any) -> None:
    plugins = [{"type": "loopback"}]
    netlist, pycni = network(pycni_lab, plugins, "1.0.0")
    _, go = network(pycni_lab, plugins, "1.0.0", cni_path=[GO_PLUGIN_DIR])
    ns_py, ns_go = fresh_netns(make_netns), fresh_netns(make_netns)
    ours = pycni.add_network_list(netlist, RuntimeConf(ns_py.name, ns_py.path, "eth0")).to_wire()
    theirs = go.add_network_list(netlist, RuntimeConf(ns_go.name, ns_go.path, "eth0")).to_wire()
    ours["interfaces"][0]["sandbox"] = theirs["interfaces"][0]["sandbox"]
    assert ours == theirs


def test_check_fails_when_lo_is_down(pycni_lab: CniLab, make_netns: Any) -> None:
    netlist, cni = network(pycni_lab, [{"type": "loopback"}], "1.0.0")
    ns = fresh_netns(make_netns)
    rt = RuntimeConf(ns.name, ns.path, "eth0")
    cni.add_network_list(netlist, rt)
    run("ip", "link", "set", "lo", "down", netns=ns.name)
    with pytest.raises(CniError, match="loopback interface is down"):
        cni.check_network_list(netlist, rt)
    cni.del_network_list(netlist, rt)


def test_non_loopback_address_on_lo_is_refused(pycni_lab: CniLab, make_netns: Any) -> None:
    netlist, cni = network(pycni_lab, [{"type": "loopback"}], "1.0.0")
    ns = fresh_netns(make_netns)
    run("ip", "addr", "add", "192.0.2.7/32", "dev", "lo", netns=ns.name)
    with pytest.raises(CniError, match=re.escape('non-loopback address "192.0.2.7"')):
        cni.add_network_list(netlist, RuntimeConf(ns.name, ns.path, "eth0"))


def test_chained_after_bridge_passes_the_result_through(pycni_lab: CniLab, make_netns: Any) -> None:
    lab = pycni_lab
    bridge = {
        "type": "bridge",
        "bridge": lab.bridge,
        "isGateway": True,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": lab.subnet4}]], "dataDir": str(lab.ipam_dir)},
    }
    netlist, cni = network(lab, [bridge, {"type": "loopback"}], "1.0.0")
    ns = fresh_netns(make_netns)
    rt = RuntimeConf(ns.name, ns.path, "eth0")

    result = cni.add_network_list(netlist, rt)

    assert [i.name for i in result.interfaces][0::2] == [lab.bridge, "eth0"]
    assert [str(ip.address.ip) for ip in result.ips] == [lab.subnet4.replace(".0/24", ".2")]
    assert lo_is_up(ns)
    cni.check_network_list(netlist, rt)
    cni.del_network_list(netlist, rt)
    assert not lo_is_up(ns)
    assert lab.reserved_ips(f"lo-{lab.bridge}") == []
