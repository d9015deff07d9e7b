"""Every check against fixture snapshots: a healthy node passes everything, each fault fails (or warns) its
own check and, where it has consequences, those point at it ("see <root>")."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

import pytest

from pycni.cluster.status_file import AgentStatus
from pycni.doctor.run import CHECK_IDS, judge
from pycni.doctor.snapshot import (
    AgentView,
    CacheFile,
    FirewallView,
    IpamView,
    LinkView,
    NetnsView,
    PluginFile,
    ProbeResult,
    Reservation,
    RouteView,
    Snapshot,
    StoreView,
    SyntheticResult,
)
from tests.unit.doctor.snapshots import (
    NOW,
    OWN,
    PEER,
    PEER_MAC,
    conflist,
    failing,
    healthy,
    lease,
    with_node,
    with_sysctl,
)


def result(snap: Snapshot, check_id: str) -> tuple[str, str, str]:
    found = next(r for r in judge(snap) if r.id == check_id)
    return found.status, found.summary, found.fix


def test_a_healthy_node_passes_every_check() -> None:
    results = judge(healthy())
    assert [r.id for r in results] == list(CHECK_IDS)
    assert {r.id: r.status for r in results if r.status != "pass"} == {}


def test_root_causes_come_before_their_consequences() -> None:
    order = list(CHECK_IDS)
    for root, consequence in [("datastore", "cidr-mismatch"), ("agent-down", "cidr-mismatch"),
                              ("agent-down", "peer-state"), ("conf-missing", "plugin-missing"),
                              ("plugin-missing", "version-skew"), ("ipam-leak", "ipam-exhausted"),
                              ("vxlan-port", "peer-state"), ("policy", "synthetic-pod")]:
        assert order.index(root) < order.index(consequence)


# -- conf dir and plugins ----------------------------------------------------------------------------------


def test_an_empty_conf_dir_fails_conf_missing_and_skips_what_needs_a_config() -> None:
    snap = replace(healthy(), conf=())
    assert failing(snap)[0] == "conf-missing"
    assert result(snap, "plugin-missing")[0] == "skip"
    assert "start the agent" in result(snap, "conf-missing")[2]


def test_a_stray_file_sorting_first_fails_conf_missing() -> None:
    stray = conflist("000-stray.conflist", subnet=IPv4Network("10.99.0.0/24"))
    status, summary, fix = result(replace(healthy(), conf=(stray, conflist())), "conf-missing")
    assert (status, fix) == ("fail", "rm /lab/n1/net.d/000-stray.conflist")
    assert "sorts before 00-pycni-cluster.conflist" in summary


def test_only_invalid_files_fail_conf_missing() -> None:
    bad = conflist("00-pycni-cluster.conflist", error="plugins[0].type: missing", network=None)
    assert result(replace(healthy(), conf=(bad,)), "conf-missing")[0] == "fail"


def test_a_missing_plugin_fails_plugin_missing_with_the_runtime_wording() -> None:
    snap = healthy()
    snap = replace(snap, plugins={**snap.plugins, "portmap": PluginFile("portmap", None)})
    found = next(r for r in judge(snap) if r.id == "plugin-missing")
    assert found.status == "fail"
    assert found.evidence == ('failed to find plugin "portmap" in path [/lab/bin]',)
    assert found.fix == "pycni install --bin-dir /lab/bin portmap"


@pytest.mark.parametrize("plugin", [
    PluginFile("portmap", "/lab/bin/portmap", executable=False),
    PluginFile("portmap", "/lab/bin/portmap", regular=False),
    PluginFile("portmap", "/lab/bin/portmap", interpreter="/usr/bin/python9", interpreter_ok=False),
    PluginFile("portmap", "/lab/bin/portmap", foreign_arch="aarch64"),
])
def test_a_plugin_that_cannot_run_fails_plugin_not_exec(plugin: PluginFile) -> None:
    snap = healthy()
    snap = replace(snap, plugins={**snap.plugins, "portmap": plugin})
    assert failing(snap) == ["plugin-not-exec"]


def test_a_plugin_without_the_configs_version_fails_version_skew() -> None:
    snap = healthy()
    old = PluginFile("portmap", "/lab/bin/portmap", versions=("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0"))
    snap = replace(snap, plugins={**snap.plugins, "portmap": old})
    found = next(r for r in judge(snap) if r.id == "version-skew")
    assert found.status == "fail"
    assert 'incompatible CNI versions; config is "1.0.0"' in found.evidence[0]


def test_a_conflist_without_cni_version_fails_version_skew() -> None:
    assert result(replace(healthy(), conf=(conflist(cni_version=None),)), "version-skew")[0] == "fail"


# -- datastore and agent --------------------------------------------------------------------------------------


def test_an_unreachable_etcd_fails_datastore_and_skips_what_needs_leases() -> None:
    snap = replace(healthy(), store=StoreView(error="etcd is unreachable at http://127.0.0.1:2379: refused"))
    verdict = {r.id: r.status for r in judge(snap)}
    assert verdict["datastore"] == "fail"
    assert {verdict[c] for c in ("cidr-mismatch", "node-ip", "peer-state", "vtep-mac", "mtu")} == {"skip"}
    assert failing(snap) == ["datastore"]


def test_tls_errors_get_a_tls_fix() -> None:
    snap = replace(healthy(), store=StoreView(error="[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"))
    assert "--etcd-cafile" in result(snap, "datastore")[2]


def test_no_cluster_config_fails_datastore() -> None:
    snap = replace(healthy(), store=StoreView(error=None))
    assert "pycni cluster init" in result(snap, "datastore")[2]


def test_a_dead_agent_fails_agent_down_first() -> None:
    snap = healthy()
    assert snap.agent is not None
    snap = replace(snap, agent=replace(snap.agent, pid_alive=False, pid_is_agent=False))
    assert failing(snap) == ["agent-down"]


def test_a_missing_status_file_fails_agent_down() -> None:
    snap = replace(healthy(), agent=AgentView(None, "agent.json missing", False, False, NOW))
    assert result(snap, "agent-down")[0] == "fail"


def test_a_reused_pid_and_a_stuck_agent_fail_agent_down() -> None:
    snap = healthy()
    assert snap.agent is not None and snap.agent.status is not None
    reused = replace(snap, agent=replace(snap.agent, pid_is_agent=False))
    stuck = replace(snap, agent=replace(snap.agent, status=replace(snap.agent.status, last_reconcile=NOW - 60)))
    assert result(reused, "agent-down")[0] == "fail"
    assert "has not reconciled for 60s" in result(stuck, "agent-down")[1]


def test_an_agent_without_a_lease_is_not_renewing() -> None:
    snap = healthy()
    assert snap.store is not None
    snap = replace(snap, store=replace(snap.store, leases=snap.store.leases[1:]))
    assert "not renewing" in result(snap, "agent-down")[1]


def test_consequences_of_a_dead_agent_point_at_it() -> None:
    snap = healthy()
    assert snap.agent is not None and snap.node is not None
    routes = snap.node.routes[:2]
    snap = replace(snap, agent=replace(snap.agent, pid_alive=False), policy=(False, "connect: no such file"))
    snap = with_node(snap, routes=routes)
    results = {r.id: r for r in judge(snap)}
    assert results["peer-state"].summary.endswith("(see agent-down)")
    assert (results["policy"].status, results["policy"].summary) == ("skip", "not judged: see agent-down")


# -- the node's files against its lease -------------------------------------------------------------------------


def test_a_conflist_range_other_than_the_lease_fails_cidr_mismatch() -> None:
    snap = replace(healthy(), conf=(conflist(subnet=IPv4Network("10.244.254.0/24")),))
    assert failing(snap) == ["cidr-mismatch"]
    assert result(snap, "bridge-stale-addr")[:2] == ("skip", "not judged: see cidr-mismatch")


def test_a_subnet_env_that_disagrees_fails_cidr_mismatch() -> None:
    snap = replace(healthy(), subnet_env={"PYCNI_NETWORK": "10.244.0.0/16", "PYCNI_SUBNET": "10.244.7.1/24"})
    assert failing(snap) == ["cidr-mismatch"]


def test_a_lease_outside_the_network_fails_cidr_mismatch() -> None:
    snap = healthy()
    assert snap.store is not None
    snap = replace(snap, store=replace(snap.store, network=IPv4Network("10.10.0.0/16")),
                   subnet_env={"PYCNI_NETWORK": "10.10.0.0/16", "PYCNI_SUBNET": "10.244.1.1/24"})
    assert "outside the cluster network" in next(r for r in judge(snap) if r.id == "cidr-mismatch").evidence[0]


def test_a_pod_network_overlapping_the_nodes_own_fails_cidr_overlap() -> None:
    snap = healthy()
    assert snap.node is not None
    lan = LinkView("d0", "dummy", 1500, "02:00:00:00:00:33", True, (IPv4Interface("10.244.9.1/24"),))
    routes = (*snap.node.routes, RouteView(IPv4Network("10.244.200.0/24"), IPv4Address("192.168.77.1"), "eth0", 4))
    overlapping = with_node(snap, links=(*snap.node.links, lan), routes=routes)
    found = next(r for r in judge(overlapping) if r.id == "cidr-overlap")
    assert found.status == "fail"
    assert found.evidence == ("d0: 10.244.9.1/24", "route 10.244.200.0/24 via 192.168.77.1 dev eth0 (proto 4)")
    assert failing(overlapping) == ["cidr-overlap"]


def test_a_leased_address_missing_from_the_node_fails_node_ip() -> None:
    snap = healthy()
    assert snap.node is not None
    links = tuple(replace(link, addresses=(IPv4Interface("192.168.77.99/24"),)) if link.name == "eth0" else link
                  for link in snap.node.links)
    assert failing(with_node(snap, links=links)) == ["node-ip"]
    elsewhere = replace(snap, options=replace(snap.options, iface="eth1"))
    assert result(elsewhere, "node-ip")[0] == "fail"


# -- kernel settings and foreign firewalls ---------------------------------------------------------------------------


def test_ip_forward_off_fails() -> None:
    assert failing(with_sysctl(healthy(), "net.ipv4.ip_forward", "0")) == ["ip-forward"]


@pytest.mark.parametrize("value", ["0", None])
def test_br_netfilter_off_fails_when_policy_is_on_and_warns_otherwise(value: str | None) -> None:
    snap = with_sysctl(healthy(), "net.bridge.bridge-nf-call-iptables", value)
    assert result(snap, "br-netfilter")[0] == "fail"
    without_policy = replace(snap, conf=(conflist(types=("bridge", "host-local", "portmap")),))
    assert result(without_policy, "br-netfilter")[0] == "warn"


def test_strict_rp_filter_on_the_overlay_warns() -> None:
    snap = with_sysctl(healthy(), "net.ipv4.conf.pycni.1.rp_filter", "1")
    assert failing(snap) == ["rp-filter"]
    assert result(snap, "rp-filter")[0] == "warn"
    assert result(with_sysctl(healthy(), "net.ipv4.conf.all.rp_filter", "2"), "rp-filter")[0] == "pass"


def _firewall(snap: Snapshot, *chains: tuple[str, str, str, str, str, tuple[str, ...]],
              legacy_tables: tuple[str, ...] = (), legacy_rules: tuple[str, ...] = ()) -> Snapshot:
    assert snap.firewall is not None
    return replace(snap, firewall=FirewallView(snap.firewall.nft_chains + chains, legacy_tables, legacy_rules))


def test_a_foreign_forward_chain_with_policy_drop_fails_forward_drop() -> None:
    snap = _firewall(healthy(), ("ip", "f", "fw", "forward", "drop", ()))
    assert failing(snap) == ["forward-drop"]
    assert "ip f fw" in result(snap, "forward-drop")[2]


def test_a_foreign_drop_after_an_accept_of_the_pod_network_is_fine() -> None:
    rules = ("ip saddr 10.244.0.0/16 accept", "drop")
    assert failing(_firewall(healthy(), ("ip", "f", "fw", "forward", "accept", rules))) == []


def test_pycnis_own_policy_drops_are_not_foreign() -> None:
    assert failing(_firewall(healthy(), ("inet", "pycni_policy", "x", "forward", "drop", ("drop",)))) == []


def test_iptables_legacy_rules_beside_nftables_fail_iptables_mixed() -> None:
    snap = _firewall(healthy(), legacy_tables=("filter",),
                     legacy_rules=("-P FORWARD DROP", "-A FORWARD -j LABFAULT"))
    verdict = {r.id: r for r in judge(snap)}
    assert verdict["iptables-mixed"].status == "fail"
    assert verdict["forward-drop"].status == "fail"
    assert verdict["forward-drop"].summary.endswith("(see iptables-mixed)")
    empty = _firewall(healthy(), legacy_tables=("filter",), legacy_rules=("-P FORWARD ACCEPT",))
    assert failing(empty) == []


def test_a_dropped_vxlan_port_fails_vxlan_port_and_the_lost_probe_points_at_it() -> None:
    snap = _firewall(healthy(), ("inet", "f", "in", "input", "accept", ("udp dport 8472 drop",)))
    snap = replace(snap, probes=(ProbeResult("n2", IPv4Address("10.244.2.0"), False, 1422, None),))
    verdict = {r.id: r for r in judge(snap)}
    assert verdict["vxlan-port"].status == "fail"
    assert verdict["peer-state"].summary.endswith("(see vxlan-port)")


def test_host_gw_has_no_vxlan_port() -> None:
    snap = healthy()
    assert snap.store is not None
    snap = replace(snap, store=replace(snap.store, backend_type="host-gw"))
    assert result(snap, "vxlan-port")[0] == "pass"


def test_a_full_conntrack_table_warns() -> None:
    assert failing(with_node(healthy(), conntrack=(260000, 262144))) == ["conntrack"]


def test_bad_vxlan_checksums_in_the_kernel_log_warn() -> None:
    snap = healthy()
    assert snap.node is not None
    links = tuple(replace(link, tx_checksum=True) if link.name == "pycni.1" else link for link in snap.node.links)
    snap = with_node(snap, links=links,
                     kernel_log=("UDP: bad checksum. From 192.168.77.12:51234 to 192.168.77.11:8472 ulen 1458",))
    assert failing(snap) == ["csum-offload"]
    assert result(snap, "csum-offload")[2] == "ethtool -K pycni.1 tx-checksum-ip-generic off"


def test_network_manager_managing_the_bridge_warns() -> None:
    snap = healthy()
    assert snap.node is not None
    links = tuple(replace(link, managed_by="NetworkManager") if link.name == "cni0" else link
                  for link in snap.node.links)
    assert failing(with_node(snap, links=links)) == ["link-managers"]


# -- peers ------------------------------------------------------------------------------------------------------


def test_a_missing_neighbour_fails_peer_state() -> None:
    snap = healthy()
    assert snap.node is not None and snap.node.peer_entries is not None
    snap = with_node(snap, peer_entries=replace(snap.node.peer_entries, neighbours=frozenset()))
    assert failing(snap) == ["peer-state"]


def test_a_host_gw_peer_needs_a_route_via_its_address() -> None:
    snap = healthy()
    assert snap.store is not None
    snap = replace(snap, store=replace(snap.store, backend_type="host-gw"))
    assert result(snap, "peer-state")[0] == "fail"
    snap = with_node(snap, routes=(RouteView(PEER, IPv4Address("192.168.77.12"), "eth0", 124),))
    assert result(snap, "peer-state")[0] == "pass"


def test_a_silent_peer_fails_with_vxlan_and_warns_with_host_gw() -> None:
    snap = replace(healthy(), probes=(ProbeResult("n2", IPv4Address("10.244.2.0"), False, 1422, None),))
    assert result(snap, "peer-state")[0] == "fail"
    assert snap.store is not None
    host_gw = replace(snap, store=replace(snap.store, backend_type="host-gw"))
    host_gw = with_node(host_gw, routes=(RouteView(PEER, IPv4Address("192.168.77.12"), "eth0", 124),))
    assert result(host_gw, "peer-state")[0] == "warn"
    no_gateway = replace(healthy(), probes=(ProbeResult("n2", IPv4Address("10.244.2.0"), True, 1422, True, None,
                                                        IPv4Address("10.244.2.1"), False),))
    assert result(no_gateway, "peer-state")[0] == "warn"


def test_a_changed_vtep_mac_and_a_duplicate_fail_vtep_mac() -> None:
    snap = healthy()
    assert snap.node is not None and snap.store is not None
    links = tuple(replace(link, mac="0a:58:de:ad:be:ef") if link.name == "pycni.1" else link
                  for link in snap.node.links)
    assert failing(with_node(snap, links=links)) == ["vtep-mac"]
    twin = replace(snap, store=replace(snap.store, leases=(*snap.store.leases,
                                                           lease("n3", IPv4Network("10.244.3.0/24"),
                                                                 "192.168.77.13", PEER_MAC))))
    assert result(twin, "vtep-mac")[0] == "fail"


def test_a_lowered_underlay_mtu_fails_mtu() -> None:
    snap = healthy()
    assert snap.node is not None
    links = tuple(replace(link, mtu=1400) if link.name == "eth0" else link for link in snap.node.links)
    found = next(r for r in judge(with_node(snap, links=links)) if r.id == "mtu")
    assert found.status == "fail"
    assert "pycni.1 MTU 1450 > eth0 MTU 1400 - 50" in found.evidence


def test_peers_with_another_mtu_and_a_black_hole_fail_mtu() -> None:
    snap = healthy()
    assert snap.store is not None
    other = replace(snap, store=replace(snap.store, leases=(snap.store.leases[0],
                                                            lease("n2", PEER, "192.168.77.12", PEER_MAC, 1400))))
    assert failing(other) == ["mtu"]
    hole = replace(snap, probes=(ProbeResult("n2", IPv4Address("10.244.2.0"), True, 1422, False),))
    assert failing(hole) == ["mtu"]
    cached = replace(snap, probes=(ProbeResult("n2", IPv4Address("10.244.2.0"), True, 1422, False,
                                               "local error: message too long, mtu=1350"),))
    assert result(cached, "mtu")[2].startswith("ip route flush cache")


def test_old_leases_without_mtu_are_not_compared() -> None:
    snap = healthy()
    assert snap.store is not None
    old = replace(snap, store=replace(snap.store, leases=(snap.store.leases[0],
                                                          lease("n2", PEER, "192.168.77.12", PEER_MAC, None))))
    assert failing(old) == []


# -- the node's pod plumbing -------------------------------------------------------------------------------------------


def test_a_foreign_address_on_the_bridge_fails_bridge_stale_addr() -> None:
    snap = healthy()
    assert snap.node is not None
    links = tuple(replace(link, addresses=(*link.addresses, IPv4Interface("10.250.0.1/24")))
                  if link.name == "cni0" else link for link in snap.node.links)
    status, summary, fix = result(with_node(snap, links=links), "bridge-stale-addr")
    assert (status, fix) == ("fail", "ip addr del 10.250.0.1/24 dev cni0")
    assert "already has an IP address different from 10.244.1.1/24" in summary


def test_no_bridge_yet_is_fine() -> None:
    snap = healthy()
    assert snap.node is not None
    assert failing(with_node(snap, links=tuple(link for link in snap.node.links if link.name != "cni0"))) == []


def _reservations(count: int, cid: str = "c1") -> tuple[Reservation, ...]:
    return tuple(Reservation(str(OWN[i + 2]), f"{cid}{i}" if cid != "c1" else "c1", "eth0") for i in range(count))


def test_reservations_without_an_attachment_fail_ipam_leak_with_the_gc_fix() -> None:
    leaked = Reservation("10.244.1.77", "dead", "eth0")
    snap = replace(healthy(), ipam=IpamView("/lab/n1/ipam/pycni", (*_reservations(1), leaked)))
    status, summary, fix = result(snap, "ipam-leak")
    assert status == "fail" and summary.startswith("1 address")
    assert fix.endswith("pycni gc pycni") and "CNI_CACHE_DIR=/lab/n1/cache" in fix


def test_a_full_range_fails_ipam_exhausted_and_points_at_the_leak() -> None:
    snap = replace(healthy(), ipam=IpamView("/lab/n1/ipam/pycni", _reservations(253, cid="dead")))
    verdict = {r.id: r for r in judge(snap)}
    assert verdict["ipam-leak"].status == "fail"
    assert verdict["ipam-exhausted"].status == "fail"
    assert verdict["ipam-exhausted"].summary.endswith("(see ipam-leak)")


def test_a_nearly_full_range_warns() -> None:
    used = tuple(Reservation(str(OWN[i + 2]), "c1", "eth0") for i in range(230))
    assert result(replace(healthy(), ipam=IpamView("/d", used)), "ipam-exhausted")[0] == "warn"


def test_an_empty_cached_result_fails_cache_corrupt_only() -> None:
    snap = healthy()
    assert snap.cache is not None
    broken = CacheFile("pycni-c2-eth0", "pycni", "c2", "eth0", None, "unreadable: Expecting value")
    snap = replace(snap, cache=(*snap.cache, broken))
    assert failing(snap) == ["cache-corrupt"]
    assert result(snap, "cache-corrupt")[2] == "rm /lab/n1/cache/results/pycni-c2-eth0"


def test_a_runtime_namespace_nobody_uses_warns_netns_leak() -> None:
    snap = replace(healthy(), netns=(NetnsView("p1", True), NetnsView("cni-1234-5678", False),
                                     NetnsView("someone-elses", False)))
    assert failing(snap) == ["netns-leak"]
    assert result(snap, "netns-leak")[2] == "ip netns del cni-1234-5678"


def test_the_executor_check() -> None:
    snap = healthy()
    assert snap.executor is not None
    assert result(replace(snap, executor=replace(snap.executor, exists=False, answers=False)),
                  "executor")[0] == "pass"
    assert result(replace(snap, executor=replace(snap.executor, answers=False)), "executor")[0] == "warn"
    stale = replace(snap, executor=replace(snap.executor, stale_shims=("/lab/bin/loopback: another pycni",)))
    assert failing(stale) == ["executor"]


def test_policy_not_enforced_fails_and_off_passes() -> None:
    snap = replace(healthy(), policy=(False, "policy agent socket: connect: refused"))
    assert failing(snap) == ["policy"]
    off = replace(snap, conf=(conflist(types=("bridge", "host-local", "portmap")),))
    assert result(off, "policy")[0] == "pass"


def test_a_failed_synthetic_pod_names_the_cause() -> None:
    snap = replace(healthy(), synthetic=SyntheticResult(
        False, "add", 'plugin type="bridge" name="pycni" failed (add): failed to allocate for range 0: '
        "no IP addresses available in range set: 10.244.1.1-10.244.1.254", 0.2))
    found = next(r for r in judge(snap) if r.id == "synthetic-pod")
    assert found.status == "fail"
    assert "cause: ipam-exhausted" in found.evidence
    add_failed = SyntheticResult(False, "add", 'failed to find plugin "portmap" in path [/lab/bin]', 0.1)
    missing = replace(healthy(), plugins={**healthy().plugins, "portmap": PluginFile("portmap", None)},
                      synthetic=add_failed)
    borrowed = next(r for r in judge(missing) if r.id == "synthetic-pod")
    assert borrowed.fix == "pycni install --bin-dir /lab/bin portmap"  # plugin-missing's, with this node's path


def test_a_synthetic_pod_not_run_says_why() -> None:
    snap = replace(healthy(), synthetic=None, errors={"synthetic": "not run: see agent-down"})
    assert result(snap, "synthetic-pod")[:2] == ("skip", "not run: see agent-down")


def test_an_uncollected_part_skips_with_the_reason() -> None:
    snap = replace(healthy(), node=None, errors={"node": "permission denied"})
    assert result(snap, "ip-forward") == ("skip", "cannot read sysctls: permission denied", "")


def test_an_agent_status_from_another_node_warns() -> None:
    snap = healthy()
    assert snap.agent is not None
    status = AgentStatus(pid=42, node="other", subnet=OWN, backend="vxlan", pod_mtu=1450, last_reconcile=NOW,
                         resync_seconds=2.0)
    assert result(replace(snap, agent=replace(snap.agent, status=status)), "agent-down")[0] == "warn"


def test_links_view_lookup() -> None:
    snap = healthy()
    assert snap.node is not None
    assert snap.node.link("cni0") == next(link for link in snap.node.links if link.name == "cni0")
    assert snap.node.link("nope") is None
    assert isinstance(snap.node.links[0], LinkView)


def test_policy_table_edited_behind_the_agent_is_its_own_failure() -> None:
    from pycni.doctor.checks_local import policy

    snap = replace(healthy(), policy=(False, "table inet pycni_policy is not what the agent committed: "
                                             "chain pod_1_in holds 0 rules, the agent committed 3"))
    result = policy(snap)
    assert result.status == "fail" and "changed behind the agent" in result.summary
    assert "pod_1_in holds 0 rules" in result.evidence[0]
