"""The collectors that read files only (no root, no kernel): conf dir, plugins, agent status, IPAM, cache,
subnet.env, and the nft rule text the firewall checks read."""

from __future__ import annotations

import json
import os
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path

from pycni.cluster.status_file import AgentStatus, write_status
from pycni.doctor.collect import (
    collect_agent,
    collect_cache,
    collect_conf,
    collect_ipam,
    collect_plugins,
    foreign_arch,
    read_env,
)
from pycni.doctor.collect_kernel import rule_text

CONFLIST = {
    "cniVersion": "1.0.0", "name": "pycni",
    "plugins": [{"type": "bridge", "bridge": "cni0", "mtu": 1450,
                 "ipam": {"type": "host-local", "dataDir": "/d", "ranges": [[{"subnet": "10.244.1.0/24",
                                                                             "gateway": "10.244.1.1"}]]}},
                {"type": "portmap", "capabilities": {"portMappings": True}}],
}


def test_conf_files_in_read_order_with_what_the_checks_need(tmp_path: Path) -> None:
    (tmp_path / "00-pycni-cluster.conflist").write_text(json.dumps(CONFLIST))
    (tmp_path / "10-broken.conf").write_text("{")
    (tmp_path / "README").write_text("not a config")
    first, broken = collect_conf(str(tmp_path))
    assert first.types == ("bridge", "host-local", "portmap")
    assert first.ranges == (IPv4Network("10.244.1.0/24"),)
    assert first.gateway == IPv4Interface("10.244.1.1/24")
    assert (first.mtu, first.bridge, first.ipam_data_dir, first.cni_version) == (1450, "cni0", "/d", "1.0.0")
    assert broken.name == "10-broken.conf" and broken.error


def test_a_missing_conf_dir_is_empty(tmp_path: Path) -> None:
    assert collect_conf(str(tmp_path / "nope")) == ()


def test_plugins_missing_not_executable_and_with_a_missing_interpreter(tmp_path: Path) -> None:
    (tmp_path / "noexec").write_text("#!/bin/sh\n")
    (tmp_path / "gone").write_text("#!/no/such/python -I\n")
    (tmp_path / "gone").chmod(0o755)
    found = collect_plugins(("absent", "noexec", "gone"), (str(tmp_path),))
    assert found["absent"].path is None
    assert found["noexec"].executable is False  # no execute bit at all: not even root may exec it
    assert (found["gone"].interpreter, found["gone"].interpreter_ok) == ("/no/such/python", False)


def test_agent_status_missing_dead_and_alive(tmp_path: Path) -> None:
    assert collect_agent(str(tmp_path)).status_error == "agent.json missing"
    status = AgentStatus(pid=os.getpid(), node="n1", subnet=IPv4Network("10.244.1.0/24"), backend="vxlan",
                         pod_mtu=1450, last_reconcile=1.0, resync_seconds=5.0)
    write_status(str(tmp_path), status)
    view = collect_agent(str(tmp_path))
    assert view.status == status and view.pid_alive and not view.pid_is_agent  # pytest is not an agent
    (tmp_path / "agent.json").write_text("{")
    assert "agent.json" in (collect_agent(str(tmp_path)).status_error or "")


def test_ipam_reservations_keep_their_crlf_separator(tmp_path: Path) -> None:
    (tmp_path / "10.244.1.5").write_bytes(b"abc\r\neth0")
    (tmp_path / "10.244.1.6").write_bytes(b"old-style-without-ifname")
    (tmp_path / "last_reserved_ip.0").write_text("10.244.1.6")
    (tmp_path / "lock").write_text("")
    view = collect_ipam(str(tmp_path))
    assert [(r.ip, r.container_id, r.ifname) for r in view.reservations] == [
        ("10.244.1.5", "abc", "eth0"), ("10.244.1.6", "old-style-without-ifname", "")]


def test_cache_files_good_and_corrupt_named_by_their_file(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "pycni-c1-eth0").write_text(json.dumps({"kind": "cniCacheV1", "containerId": "c1",
                                                       "ifName": "eth0", "networkName": "pycni",
                                                       "netns": "/run/netns/p1"}))
    (results / "pycni-dead-beef-eth0").write_text("")
    good, bad = collect_cache(str(tmp_path), ("pycni",))
    assert (good.container_id, good.netns, good.error) == ("c1", "/run/netns/p1", None)
    assert (bad.network, bad.container_id, bad.ifname) == ("pycni", "dead-beef", "eth0") and bad.error


def test_subnet_env(tmp_path: Path) -> None:
    (tmp_path / "subnet.env").write_text("PYCNI_NETWORK=10.244.0.0/16\nPYCNI_SUBNET=10.244.1.1/24\n")
    assert read_env(str(tmp_path / "subnet.env")) == {"PYCNI_NETWORK": "10.244.0.0/16",
                                                      "PYCNI_SUBNET": "10.244.1.1/24"}
    assert read_env(str(tmp_path / "none")) is None


def test_nft_rules_read_as_words() -> None:
    rule = {"expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}},
                                "right": 8472}}, {"drop": None}]}
    assert rule_text(rule) == "udp dport 8472 drop"
    accept = {"expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                                  "right": {"prefix": {"addr": "10.244.0.0", "len": 16}}}}, {"accept": None}]}
    assert rule_text(accept) == "ip saddr 10.244.0.0/16 accept"


def test_elf_binaries_for_another_machine() -> None:
    x86 = b"\x7fELF\x02\x01\x01" + bytes(11) + (62).to_bytes(2, "little")
    arm = b"\x7fELF\x02\x01\x01" + bytes(11) + (183).to_bytes(2, "little")
    assert foreign_arch(x86, "x86_64") is None
    assert foreign_arch(arm, "x86_64") == "aarch64"
    assert foreign_arch(b"#!/bin/sh\n" + bytes(20), "x86_64") is None
    assert foreign_arch(arm, "mips") is None  # a machine we have no table entry for: do not guess
