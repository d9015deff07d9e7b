"""pycni's firewall plugin after Debian's Go bridge + host-local, with real traffic.

Each test owns its network name, bridges, subnets and container IDs, and
compares only the rules that carry those names before and after: tests of
other files (and other test runs) may change iptables and nftables at the
same time. Isolation rules belong to bridges (as in the reference); each
test deletes its bridges and runs the plugin's GC, which prunes the rules
of bridges that are gone, so nothing of ours is left behind.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from pycni.runtime import CniConfig, RuntimeConf, load_network_conf
from pycni.spec.errors import CniError
from tests.integration.plugin_helpers import exec_plugin, relocate
from tests.support.cnilab import CniLab
from tests.support.host import ping, run
from tests.support.subnets import free_subnet4

BACKENDS = ["iptables", "nftables"]
NFT_TABLE = "pycni-firewall"


# -- fixtures and helpers -------------------------------------------------------


@pytest.fixture
def lab(lab: CniLab) -> CniLab:
    lab.install_pycni("firewall", "tuning")
    return relocate(lab)


@pytest.fixture
def lab2(lab: CniLab) -> Iterator[CniLab]:
    """A second bridge and subnet in the same CNI world (same bin, cache and IPAM dirs)."""
    other = CniLab(root=lab.root / "lab2", bridge=f"pcc{uuid.uuid4().hex[:6]}", subnet4="", gateway4="",
                   subnet6="")
    other.bin_dir, other.cache_dir, other.ipam_dir, other.conf_dir = lab.bin_dir, lab.cache_dir, lab.ipam_dir, \
        lab.conf_dir
    relocate(other)
    yield other
    run("ip", "link", "delete", other.bridge, check=False)


@pytest.fixture
def netname() -> str:
    return f"fw{uuid.uuid4().hex[:8]}"


def cni_for(lab: CniLab) -> CniConfig:
    return CniConfig(lab.cni_path, cache_dir=str(lab.cache_dir))


def firewall(backend: str, **conf: Any) -> dict[str, Any]:
    return {"type": "firewall", "backend": backend, **conf}


class Pods:
    """ADD/DEL of pods on networks, remembering what to DEL at the end."""

    def __init__(self, lab: CniLab, make_netns: Any) -> None:
        self.lab, self.make_netns, self.cni = lab, make_netns, cni_for(lab)
        self.added: list[tuple[Any, RuntimeConf]] = []

    def network(self, name: str, plugins: list[dict[str, Any]], version: str = "1.0.0") -> Any:
        self.lab.write_conflist(name, plugins, version=version)
        return load_network_conf(str(self.lab.conf_dir), name)

    def add(self, netlist: Any, **rt: Any) -> tuple[Any, RuntimeConf, str]:
        ns = self.make_netns()
        conf = RuntimeConf(container_id="ctr-" + ns.name[-10:], netns=ns.path, ifname="eth0", **rt)
        self.added.append((netlist, conf))
        result = self.cni.add_network_list(netlist, conf)
        (ip4,) = [str(ip.address.ip) for ip in result.ips if ip.address.version == 4]
        return ns, conf, ip4

    def delete(self, netlist: Any, conf: RuntimeConf) -> None:
        self.cni.del_network_list(netlist, conf)
        self.added = [(n, c) for n, c in self.added if c != conf]

    def delete_all(self) -> None:
        for netlist, conf in reversed(self.added):
            self.cni.del_network_list(netlist, conf)
        self.added = []


@pytest.fixture
def pods(lab: CniLab, make_netns: Any) -> Iterator[Pods]:
    p = Pods(lab, make_netns)
    try:
        yield p
    finally:
        p.delete_all()


_COUNTERS = re.compile(r"\[\d+:\d+\]")


def owned_lines(*markers: str) -> list[str]:
    """iptables-save / ip6tables-save / nft ruleset lines that mention any marker (counters dropped)."""
    lines = []
    for tool in ("iptables-save", "ip6tables-save"):
        if shutil.which(tool):
            lines += [f"{tool}: {_COUNTERS.sub('', line)}" for line in run(tool).stdout.splitlines()]
    lines += [f"nft: {line.strip()}" for line in run("nft", "list", "ruleset").stdout.splitlines()]
    return sorted(line for line in lines if any(m in line for m in markers))


def tagged(netname: str, container_id: str) -> str:
    return f"pycni/firewall/{netname}/{container_id}/eth0"


def gc(lab: CniLab, netname: str, backend: str, valid: list[RuntimeConf], **conf: Any) -> None:
    stdin = {"cniVersion": "1.1.0", "name": netname, **firewall(backend, **conf),
             "cni.dev/valid-attachments": [{"containerID": c.container_id, "ifname": c.ifname} for c in valid]}
    done = exec_plugin(lab, "firewall", "GC", stdin)
    assert done.code == 0, done.stdout


def cached_stdin(pods: Pods, netlist: Any, conf: RuntimeConf, netname: str, plugin: dict[str, Any],
                 version: str = "1.0.0") -> dict[str, Any]:
    cached = pods.cni.get_network_list_cached_result(netlist, conf)
    assert cached is not None
    return {"cniVersion": version, "name": netname, **plugin, "prevResult": cached.to_wire(version)}


# -- rules: ADD, CHECK, DEL, GC ---------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_rules_added_checked_and_removed_exactly(lab: CniLab, pods: Pods, netname: str, backend: str) -> None:
    markers = (f"pycni/firewall/{netname}/", lab.bridge)
    before = owned_lines(*markers)
    netlist = pods.network(netname, [lab.bridge_plugin(ipv6=True), firewall(backend)])
    ns, conf, ip4 = pods.add(netlist)
    tag = tagged(netname, conf.container_id)

    if backend == "iptables":
        rules = run("iptables", "-S", "CNI-FORWARD").stdout
        ctstate = "-m conntrack --ctstate RELATED,ESTABLISHED"
        assert f'-d {ip4}/32 {ctstate} -m comment --comment "{tag}" -j ACCEPT' in rules
        assert f'-s {ip4}/32 -m comment --comment "{tag}" -j ACCEPT' in rules
        assert "-j CNI-ADMIN" in rules
        assert "-j CNI-FORWARD" in run("iptables", "-S", "FORWARD").stdout
        assert tag in run("ip6tables", "-S", "CNI-FORWARD").stdout
    else:
        table = run("nft", "list", "table", "inet", NFT_TABLE).stdout
        assert f'ip daddr {ip4} ct state established,related accept comment "{tag}"' in table
        assert f'ip saddr {ip4} accept comment "{tag}"' in table
        assert table.count(f'"{tag}"') == 4  # v4 and v6, both directions
    assert ping(lab.gateway4, ns.name)
    pods.cni.check_network_list(netlist, conf)

    # CHECK notices a rule that went away
    if backend == "iptables":
        run("iptables", "-D", "CNI-FORWARD", "-s", f"{ip4}/32", "-m", "comment", "--comment", tag, "-j", "ACCEPT")
    else:
        listing = run("nft", "-a", "list", "chain", "inet", NFT_TABLE, "forward").stdout
        handle = re.search(rf'ip saddr {re.escape(ip4)} accept comment "{re.escape(tag)}" # handle (\d+)', listing)
        assert handle is not None
        run("nft", "delete", "rule", "inet", NFT_TABLE, "forward", "handle", handle.group(1))
    with pytest.raises(CniError) as err:
        pods.cni.check_network_list(netlist, conf)
    assert "firewall" in str(err.value) and ip4 in str(err.value)

    pods.delete(netlist, conf)
    assert owned_lines(*markers) == before
    pods.cni.del_network_list(netlist, conf)  # DEL again: nothing left, still fine


@pytest.mark.parametrize("backend", BACKENDS)
def test_gc_removes_only_stale_attachments(lab: CniLab, pods: Pods, netname: str, backend: str) -> None:
    netlist = pods.network(netname, [lab.bridge_plugin(), firewall(backend)])
    _, keep, _ = pods.add(netlist)
    _, stale, _ = pods.add(netlist)
    assert owned_lines(tagged(netname, stale.container_id))
    gc(lab, netname, backend, [keep])
    assert owned_lines(tagged(netname, stale.container_id)) == []
    assert owned_lines(tagged(netname, keep.container_id))
    pods.cni.check_network_list(netlist, keep)
    pods.delete_all()
    assert owned_lines(f"pycni/firewall/{netname}/") == []


def test_version_and_prev_result_requirements(lab: CniLab, make_netns: Any) -> None:
    ns = make_netns()
    old = exec_plugin(lab, "firewall", "ADD", {"cniVersion": "0.3.1", "name": "x", "type": "firewall"},
                      container_id="c1", netns=ns.path, ifname="eth0")
    assert old.error_code == 1
    alone = exec_plugin(lab, "firewall", "ADD", {"cniVersion": "1.0.0", "name": "x", "type": "firewall"},
                        container_id="c1", netns=ns.path, ifname="eth0")
    assert alone.error_code == 7 and "prevResult" in alone.json["msg"]
    bad = exec_plugin(lab, "firewall", "ADD", {"cniVersion": "1.0.0", "name": "x", "type": "firewall",
                                               "ingressPolicy": "closed", "prevResult": {"cniVersion": "1.0.0"}},
                      container_id="c1", netns=ns.path, ifname="eth0")
    assert bad.error_code == 7 and "ingressPolicy" in bad.json["msg"]


# -- ingressPolicy: real traffic between two bridges ---------------------------------


def _br_netfilter() -> bool:
    try:
        with open("/proc/sys/net/bridge/bridge-nf-call-iptables") as f:
            return f.read().strip() == "1"
    except OSError:
        return False


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("policy", ["open", "same-bridge", "isolated"])
def test_ingress_policy_between_bridges(
    lab: CniLab, lab2: CniLab, pods: Pods, netname: str, backend: str, policy: str
) -> None:
    if policy == "isolated" and not _br_netfilter():
        pytest.skip("isolated needs br_netfilter (bridge-nf-call-iptables=1) to see bridged traffic")
    markers = (lab.bridge, lab2.bridge, f"pycni/firewall/{netname}")
    before = owned_lines(*markers)
    fw = firewall(backend, ingressPolicy=policy)
    net_a = pods.network(netname + "a", [lab.bridge_plugin(), fw])
    net_b = pods.network(netname + "b", [lab2.bridge_plugin(), fw])
    a1, conf_a1, ip_a1 = pods.add(net_a)
    _, _, ip_a2 = pods.add(net_a)
    b1, conf_b1, ip_b1 = pods.add(net_b)

    same_bridge = ping(ip_a2, a1.name)
    across = ping(ip_b1, a1.name)
    back = ping(ip_a1, b1.name)
    if policy == "open":
        assert same_bridge and across and back, "control: the host forwards between the bridges"
    elif policy == "same-bridge":
        assert same_bridge, "pods on one bridge must still reach each other"
        assert not across and not back, "traffic between isolated bridges must be dropped"
    else:
        assert not same_bridge and not across and not back
    pods.cni.check_network_list(net_a, conf_a1)
    pods.cni.check_network_list(net_b, conf_b1)

    pods.delete_all()
    # the bridges' isolation rules stay with the bridges (reference behaviour) ...
    if policy != "open":
        assert owned_lines(lab.bridge) and owned_lines(lab2.bridge)
    # ... and go once the bridges are gone and GC runs
    for other in (lab, lab2):
        run("ip", "link", "delete", other.bridge, check=False)
    gc(lab, netname + "a", backend, [], ingressPolicy=policy)
    assert owned_lines(*markers) == before


def test_check_notices_missing_isolation_rule(lab: CniLab, lab2: CniLab, pods: Pods, netname: str) -> None:
    fw = firewall("iptables", ingressPolicy="same-bridge")
    netlist = pods.network(netname, [lab.bridge_plugin(), fw])
    _, conf, _ = pods.add(netlist)
    pods.cni.check_network_list(netlist, conf)
    comment = "CNI firewall plugin rules (ingressPolicy: same-bridge)"
    run("iptables", "-D", "CNI-ISOLATION-STAGE-2", "-o", lab.bridge, "-m", "comment", "--comment", comment,
        "-j", "DROP")
    with pytest.raises(CniError) as err:
        pods.cni.check_network_list(netlist, conf)
    assert "CNI-ISOLATION-STAGE-2" in str(err.value)
    pods.delete_all()
    run("ip", "link", "delete", lab.bridge, check=False)
    gc(lab, netname, "iptables", [], ingressPolicy="same-bridge")
    assert owned_lines(lab.bridge) == []


# -- a host whose forwarding filter drops the pod subnet ------------------------------


@pytest.fixture
def outside(lab: CniLab, make_netns: Any) -> Iterator[tuple[Any, str]]:
    """A netns routed via the host (veth to the host, route to the pod subnet); yields (netns, its address)."""
    ns = make_netns()
    net = free_subnet4()
    host_ip, ns_ip = str(net.network_address + 1), str(net.network_address + 2)
    host_end = f"pco{uuid.uuid4().hex[:6]}"
    run("ip", "link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", ns.name)
    try:
        run("ip", "addr", "add", f"{host_ip}/24", "dev", host_end)
        run("ip", "link", "set", host_end, "up")
        run("ip", "addr", "add", f"{ns_ip}/24", "dev", "eth0", netns=ns.name)
        run("ip", "link", "set", "eth0", "up", netns=ns.name)
        run("ip", "route", "add", lab.subnet4, "via", host_ip, netns=ns.name)
        yield ns, ns_ip
    finally:
        run("ip", "link", "delete", host_end, check=False)


@pytest.fixture
def drop_pod_subnet(lab: CniLab) -> Iterator[None]:
    """What a host with a drop-by-default FORWARD does to the pod subnet, limited to this test's subnet.

    The DROP rules are appended to FORWARD (where a policy would act: after
    every jump already there), with a comment unique to this test.
    """
    comment = f"pycni-test-drop-{uuid.uuid4().hex[:8]}"
    rules = [["-s", lab.subnet4, "-m", "comment", "--comment", comment, "-j", "DROP"],
             ["-d", lab.subnet4, "-m", "comment", "--comment", comment, "-j", "DROP"]]
    for rule in rules:
        run("iptables", "-A", "FORWARD", *rule)
    try:
        yield
    finally:
        for rule in rules:
            run("iptables", "-D", "FORWARD", *rule, check=False)


def test_pod_reaches_outside_through_a_dropping_forward_chain_only_when_allowed(
    lab: CniLab, pods: Pods, netname: str, outside: tuple[Any, str], drop_pod_subnet: None
) -> None:
    outside_ns, outside_ip = outside
    # without the firewall plugin the host drops the pod's traffic
    plain = pods.network(netname + "p", [lab.bridge_plugin()])
    pod, conf, _ = pods.add(plain)
    assert ping(lab.gateway4, pod.name)  # the pod itself is fine
    assert not ping(outside_ip, pod.name)
    pods.delete(plain, conf)

    # the iptables backend puts CNI-FORWARD ahead of the drop
    allowed = pods.network(netname, [lab.bridge_plugin(), firewall("iptables")])
    pod, conf, pod_ip = pods.add(allowed)
    assert ping(outside_ip, pod.name, count=2), "pod-initiated traffic and its replies pass"
    # like the reference: new connections *to* the pod are not opened by the plugin
    assert not ping(pod_ip, outside_ns.name)
    pods.delete(allowed, conf)
    assert owned_lines(f"pycni/firewall/{netname}/") == []

    # the nftables backend's accept lives in its own table: a drop in iptables' table still wins
    nft_net = pods.network(netname + "n", [lab.bridge_plugin(), firewall("nftables")])
    pod, conf, _ = pods.add(nft_net)
    assert not ping(outside_ip, pod.name)
    pods.delete(nft_net, conf)


# -- podman's chain ---------------------------------------------------------------------


def _pycni_bridge_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("pycni.plugins.bridge") is not None


@pytest.mark.parametrize("bridge_impl", ["go", "pycni"])
def test_podman_style_chain(lab: CniLab, pods: Pods, netname: str, bridge_impl: str) -> None:
    if bridge_impl == "pycni":
        if not _pycni_bridge_available():
            pytest.skip("pycni's bridge plugin is not there yet")
        lab.install_pycni("bridge", "host-local")
    host_port = 20000 + uuid.uuid4().int % 20000
    bridge = lab.bridge_plugin()
    bridge.update(ipMasq=True, hairpinMode=True)
    plugins = [
        bridge,
        {"type": "portmap", "capabilities": {"portMappings": True}},
        {"type": "firewall", "backend": ""},
        {"type": "tuning"},
    ]
    netlist = pods.network(netname, plugins, version="0.4.0")
    mappings = {"portMappings": [{"hostPort": host_port, "containerPort": 80, "protocol": "tcp"}]}
    pod, conf, pod_ip = pods.add(netlist, capability_args=mappings)
    tag = tagged(netname, conf.container_id)
    assert owned_lines(tag)
    assert ping(lab.gateway4, pod.name)
    # Debian's portmap 1.1.1 fails every CHECK (it looks for its IPv4 rules in ip6tables), so
    # the chain's CHECK cannot pass; CHECK our two plugins the way the runtime would call them.
    for plugin in plugins[2:]:
        stdin = cached_stdin(pods, netlist, conf, netname, plugin, version="0.4.0")
        done = exec_plugin(lab, plugin["type"], "CHECK", stdin, container_id=conf.container_id, netns=pod.path,
                           ifname="eth0")
        assert done.code == 0, done.stdout
    pods.delete(netlist, conf)
    assert owned_lines(tag) == []
    assert owned_lines(pod_ip + "/") == []
