"""pycni's tuning plugin after Debian's Go bridge + host-local, in real namespaces.

What is checked is what the pod sees: /proc/sys inside its netns and the
link as ``ip -d -j link`` reports it. Restores are observed between
tuning's DEL and bridge's (tuning is exec'd alone for that), because the
chain's DEL deletes the link right after.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pycni.runtime import CniConfig, RuntimeConf, load_network_conf
from pycni.spec.errors import CniError
from tests.integration.plugin_helpers import exec_plugin, relocate
from tests.support.cnilab import CniLab
from tests.support.host import ip_json, link_exists, ping, run

MAC = "c2:11:22:33:44:55"


def sysctl(netns: str, path: str) -> str:
    return run("cat", f"/proc/sys/{path}", netns=netns).stdout.strip()


def link(netns: str, ifname: str = "eth0") -> dict[str, Any]:
    (info,) = ip_json("-d", "link", "show", "dev", ifname, netns=netns)
    return info


def tuning(lab: CniLab, **conf: Any) -> dict[str, Any]:
    return {"type": "tuning", "dataDir": str(lab.root / "tuning"), **conf}


@pytest.fixture
def lab(lab: CniLab) -> CniLab:
    return relocate(lab)


@pytest.fixture
def cni(lab: CniLab) -> CniConfig:
    lab.install_pycni("tuning")
    return CniConfig(lab.cni_path, cache_dir=str(lab.cache_dir))


def add(lab: CniLab, cni: CniConfig, ns: Any, plugins: list[dict[str, Any]], version: str = "1.0.0",
        ifname: str = "eth0", **rt: Any) -> tuple[Any, RuntimeConf, Any]:
    lab.write_conflist("tunenet", plugins, version=version)
    netlist = load_network_conf(str(lab.conf_dir), "tunenet")
    conf = RuntimeConf(container_id="ctr-" + ns.name[-10:], netns=ns.path, ifname=ifname, **rt)
    return netlist, conf, cni.add_network_list(netlist, conf)


def backups(lab: CniLab) -> list[str]:
    directory = lab.root / "tuning"
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0"])
def test_sysctls_and_link_attributes_applied_checked_and_restored(
    lab: CniLab, cni: CniConfig, make_netns, version: str
) -> None:
    ns = make_netns()
    before_somaxconn = sysctl(ns.name, "net/core/somaxconn")
    conf = tuning(
        lab,
        sysctl={
            "net.core.somaxconn": "1234",
            "net.ipv4.conf.IFNAME.arp_filter": "1",
            "net.ipv4.tcp_rmem": "4096 87380 1000000",
        },
        mac=MAC,
        mtu=1400,
        promisc=True,
        allmulti=True,
        txQLen=321,
    )
    netlist, rt, result = add(lab, cni, ns, [lab.bridge_plugin(), conf], version=version)
    try:
        assert sysctl(ns.name, "net/core/somaxconn") == "1234"
        assert sysctl(ns.name, "net/ipv4/conf/eth0/arp_filter") == "1"
        assert sysctl(ns.name, "net/ipv4/tcp_rmem").split() == ["4096", "87380", "1000000"]
        info = link(ns.name)
        assert info["address"] == MAC and info["mtu"] == 1400 and info["txqlen"] == 321
        assert "PROMISC" in info["flags"] and "ALLMULTI" in info["flags"]
        # the result names the new MAC for the container interface only
        by_name = {i.name: i for i in result.interfaces}
        assert by_name["eth0"].mac == MAC
        others = [i for i in result.interfaces if i.name != "eth0"]
        assert others and all(i.mac != MAC for i in others)
        assert ping(lab.gateway4, ns.name)  # still a working interface

        backup_file = lab.root / "tuning" / f"{rt.container_id}_eth0.json"
        saved = json.loads(backup_file.read_text())
        original_mac = saved["mac"]
        assert saved["mtu"] == 1500 and saved["promisc"] is False and saved["allmulti"] is False
        assert saved["txQLen"] != 321 and original_mac != MAC

        cni.check_network_list(netlist, rt)

        # tuning's DEL alone: the link is still there to look at
        cached = cni.get_network_list_cached_result(netlist, rt)
        assert cached is not None
        stdin = {"cniVersion": version, "name": "tunenet", **conf, "prevResult": cached.to_wire(version)}
        done = exec_plugin(lab, "tuning", "DEL", stdin, container_id=rt.container_id, netns=ns.path, ifname="eth0")
        assert done.code == 0, done.stdout
        info = link(ns.name)
        assert info["address"] == original_mac and info["mtu"] == 1500 and info.get("txqlen", 0) == saved["txQLen"]
        assert "PROMISC" not in info["flags"] and "ALLMULTI" not in info["flags"]
        # pycni also puts back the sysctls it set (nobody changed them since)
        assert sysctl(ns.name, "net/core/somaxconn") == before_somaxconn
        assert sysctl(ns.name, "net/ipv4/conf/eth0/arp_filter") == "0"
        assert not backup_file.exists()
    finally:
        cni.del_network_list(netlist, rt)
    assert not link_exists("eth0", ns.name)
    assert backups(lab) == []
    cni.del_network_list(netlist, rt)  # idempotent


def test_check_detects_changed_sysctl_and_attribute(lab: CniLab, cni: CniConfig, make_netns) -> None:
    ns = make_netns()
    conf = tuning(lab, sysctl={"net.ipv4.conf.IFNAME.arp_ignore": "2"}, mtu=1300)
    netlist, rt, _ = add(lab, cni, ns, [lab.bridge_plugin(), conf])
    try:
        cni.check_network_list(netlist, rt)
        run("sh", "-c", "echo 0 > /proc/sys/net/ipv4/conf/eth0/arp_ignore", netns=ns.name)
        with pytest.raises(CniError) as err:
            cni.check_network_list(netlist, rt)
        assert 'sysctl["net.ipv4.conf.IFNAME.arp_ignore"]' in str(err.value)
        run("sh", "-c", "echo 2 > /proc/sys/net/ipv4/conf/eth0/arp_ignore", netns=ns.name)
        cni.check_network_list(netlist, rt)
        run("ip", "link", "set", "eth0", "mtu", "1280", netns=ns.name)
        with pytest.raises(CniError) as err:
            cni.check_network_list(netlist, rt)
        assert "mtu is 1280, expected 1300" in str(err.value)
    finally:
        cni.del_network_list(netlist, rt)


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("kernel.hostname", "host-wide"),
        ("vm.swappiness", "host-wide"),
        ("net.core.rmem_max", "not per network namespace"),
        ("net.netfilter.nf_conntrack_max", "host-wide limit"),
        ("net.bridge.bridge-nf-call-iptables", "not a known per-network-namespace"),
        ("net.ipv4.conf...all", "empty component"),
        ("net/ipv4/ip_forward", "'/' is not allowed"),
    ],
)
def test_refused_sysctl_is_code_7_naming_the_key(
    lab: CniLab, cni: CniConfig, make_netns, key: str, why: str
) -> None:
    ns = make_netns()
    host_before = Path("/proc/sys/net/core/somaxconn").read_text()
    lab.write_conflist("tunenet", [lab.bridge_plugin(), tuning(lab, sysctl={key: "1", "net.core.somaxconn": "77"})])
    netlist = load_network_conf(str(lab.conf_dir), "tunenet")
    rt = RuntimeConf(container_id="ctr-" + ns.name[-10:], netns=ns.path, ifname="eth0")
    try:
        with pytest.raises(CniError) as err:
            cni.add_network_list(netlist, rt)
        assert err.value.code == 7
        assert f'sysctl["{key}"]' in str(err.value) and why in str(err.value)
        # nothing was written: not in the pod, not on the host
        assert sysctl(ns.name, "net/core/somaxconn") != "77"
        assert Path("/proc/sys/net/core/somaxconn").read_text() == host_before
    finally:
        cni.del_network_list(netlist, rt)  # the spec's DEL after a failed ADD
    assert backups(lab) == []


def test_dotted_ifname_sysctl_and_mac_precedence(lab: CniLab, cni: CniConfig, make_netns) -> None:
    """IFNAME with a dot (plugins#779) and MAC sources: capability < args.cni."""
    ns = make_netns()
    conf = tuning(lab, sysctl={"net.ipv4.conf.IFNAME.arp_announce": "2"}, mac="c2:00:00:00:00:01",
                  capabilities={"mac": True})
    conf["args"] = {"cni": {"mac": "c2:00:00:00:00:03", "mtu": 1450}}
    netlist, rt, result = add(
        lab, cni, ns, [lab.bridge_plugin(), conf], ifname="eth0.7", capability_args={"mac": "c2:00:00:00:00:02"},
        args=(("IgnoreUnknown", "1"), ("MAC", "c2:00:00:00:00:04")),
    )
    try:
        assert sysctl(ns.name, "net/ipv4/conf/eth0.7/arp_announce") == "2"
        info = link(ns.name, "eth0.7")
        assert info["address"] == "c2:00:00:00:00:03" and info["mtu"] == 1450
        assert [i.mac for i in result.interfaces if i.name == "eth0.7"] == ["c2:00:00:00:00:03"]
        cni.check_network_list(netlist, rt)
    finally:
        cni.del_network_list(netlist, rt)


def test_del_after_netns_is_gone_removes_backup(lab: CniLab, cni: CniConfig, make_netns) -> None:
    ns = make_netns()
    netlist, rt, _ = add(lab, cni, ns, [lab.bridge_plugin(), tuning(lab, mtu=1400)])
    assert backups(lab) == [f"{rt.container_id}_eth0.json"]
    run("ip", "netns", "delete", ns.name)
    cni.del_network_list(netlist, rt)
    assert backups(lab) == []
    cni.del_network_list(netlist, rt)


def test_gc_removes_backups_of_stale_attachments(lab: CniLab, cni: CniConfig, make_netns) -> None:
    pods = []
    for _ in range(2):
        ns = make_netns()
        pods.append(add(lab, cni, ns, [lab.bridge_plugin(), tuning(lab, txQLen=500)]))
    (_, keep, _), _stale = pods
    assert backups(lab) == sorted(f"{rt.container_id}_eth0.json" for _, rt, _ in pods)
    # another network's backup in the same dataDir must survive this network's GC
    foreign = lab.root / "tuning" / "other_eth0.json"
    foreign.write_text(json.dumps({"mtu": 1500, "pycni": {"network": "othernet", "containerID": "other",
                                                          "ifname": "eth0"}}))
    gc = {"cniVersion": "1.1.0", "name": "tunenet", **tuning(lab),
          "cni.dev/valid-attachments": [{"containerID": keep.container_id, "ifname": "eth0"}]}
    done = exec_plugin(lab, "tuning", "GC", gc)
    assert done.code == 0, done.stdout
    assert backups(lab) == sorted([f"{keep.container_id}_eth0.json", "other_eth0.json"])
    foreign.unlink()
    for netlist, rt, _ in pods:
        cni.del_network_list(netlist, rt)
    assert backups(lab) == []


def test_prev_result_required(lab: CniLab, cni: CniConfig, make_netns) -> None:
    ns = make_netns()
    done = exec_plugin(lab, "tuning", "ADD", {"cniVersion": "1.0.0", "name": "tunenet", **tuning(lab, mtu=1400)},
                       container_id="c1", netns=ns.path, ifname="eth0")
    assert done.error_code == 7 and "prevResult" in done.json["msg"]
