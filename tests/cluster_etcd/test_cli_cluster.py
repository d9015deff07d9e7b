"""``pycni cluster init|show`` and ``pycni node list|remove`` as a user runs them (subprocesses, real etcd)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path

from pycni.cluster.etcd import EtcdKV
from pycni.cluster.subnets import SubnetManager
from tests.cluster_etcd.etcd_server import EtcdServer, free_port

REPO = Path(__file__).resolve().parents[2]


def pycni(*args: str, endpoint: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYCNI_ETCD_ENDPOINTS", "PYCNI_DEBUG")}
    if endpoint:
        env["PYCNI_ETCD_ENDPOINTS"] = endpoint
    return subprocess.run([sys.executable, "-m", "pycni", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=60)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_init_show_list_remove(etcd_server: EtcdServer, prefix: str, open_kv: Callable[..., EtcdKV]) -> None:
    e = etcd_server.endpoint
    out = ok(pycni("cluster", "init", "--etcd-endpoints", e, "--etcd-prefix", prefix, "--network", "10.244.0.0/16",
                   "--subnet-len", "24", "--backend", "vxlan", "--vni", "2", "--mtu", "1400", "--quarantine", "120"))
    assert out == (f"cluster config stored at {prefix}/config: 10.244.0.0/16, /24 per node (255 subnets), "
                   "vxlan VNI 2 port 8472 MTU 1400, quarantine 120s\n")
    again = ok(pycni("cluster", "init", "--etcd-prefix", prefix, "--network", "10.244.0.0/16", "--vni", "2", "--mtu",
                     "1400", "--quarantine", "120", endpoint=e))
    assert again.startswith(f"cluster config unchanged at {prefix}/config")
    kv = open_kv(e)
    stored = kv.get(f"{prefix}/config")
    assert stored is not None and json.loads(stored.value) == {
        "Network": "10.244.0.0/16", "SubnetLen": 24, "Backend": {"Type": "vxlan", "VNI": 2, "Port": 8472, "MTU": 1400},
        "Quarantine": 120}

    sm = SubnetManager(kv, prefix)
    sm.acquire("node-a", IPv4Address("192.0.2.10"), {"VtepMAC": "02:00:00:00:00:0a"})
    sm.acquire("node-b", IPv4Address("192.0.2.11"), {})

    show = ok(pycni("cluster", "show", "--etcd-prefix", prefix, endpoint=e))
    assert f"cluster {prefix} at {e}" in show
    assert "Network     10.244.0.0/16" in show
    assert "Backend     vxlan, VNI 2, port 8472, MTU 1400" in show
    assert "Leases      2 live, 0 quarantined, 253 free" in show
    table = show.split("\n\n", 1)[1].splitlines()
    assert table[0].split() == ["NODE", "SUBNET", "PUBLIC-IP", "BACKEND", "EXPIRES"]
    assert table[1].split()[:4] == ["node-a", "10.244.1.0/24", "192.0.2.10", "vxlan"]
    assert table[2].split()[:4] == ["node-b", "10.244.2.0/24", "192.0.2.11", "vxlan"]
    as_json = json.loads(ok(pycni("cluster", "show", "-o", "json", "--etcd-prefix", prefix, endpoint=e)))
    assert as_json["leases"][0]["BackendData"] == {"VtepMAC": "02:00:00:00:00:0a"}

    nodes = ok(pycni("node", "list", "--etcd-prefix", prefix, endpoint=e)).splitlines()
    assert nodes[0].split() == ["NAME", "SUBNET", "PUBLIC-IP", "STATUS"]
    assert nodes[1].startswith("node-a") and "up, lease ends in" in nodes[1]

    assert ok(pycni("node", "remove", "node-a", "--etcd-prefix", prefix, endpoint=e)) == (
        "released node node-a (subnet 10.244.1.0/24 is free)\n")
    assert [lease.node for lease in sm.list_leases()[0]] == ["node-b"]
    nodes = ok(pycni("node", "list", "--etcd-prefix", prefix, endpoint=e)).splitlines()
    assert any(line.startswith("node-a") and "removed" in line for line in nodes)
    error = one_line_error(pycni("node", "remove", "node-x", "--etcd-prefix", prefix, endpoint=e))
    assert error == "pycni: no node named 'node-x' (known: node-a, node-b) (code 999)"
    kv.close()


def test_init_refuses_bad_networks_and_changes_in_one_line(
    etcd_server: EtcdServer, prefix: str, open_kv: Callable[..., EtcdKV]
) -> None:
    e = etcd_server.endpoint

    def init(*args: str) -> subprocess.CompletedProcess[str]:
        return pycni("cluster", "init", "--etcd-prefix", prefix, *args, endpoint=e)

    assert one_line_error(init("--network", "10.0.0.0/33")) == "pycni: Network: '10.0.0.0/33' is not a CIDR (code 7)"
    assert one_line_error(init("--network", "10.244.0.0/16", "--subnet-len", "30")) == (
        "pycni: SubnetLen: 30 leaves fewer than 4 addresses per node for pods; use at most 29 (code 7)")
    assert "Network: 127.0.0.0/16 overlaps the loopback range" in one_line_error(init("--network", "127.0.0.0/16"))
    assert "Backend.VNI: only applies to the vxlan backend" in one_line_error(
        init("--network", "10.1.0.0/16", "--backend", "host-gw", "--vni", "3"))
    ok(init("--network", "10.1.0.0/16", "--backend", "host-gw"))
    assert "a different cluster config exists" in one_line_error(init("--network", "10.2.0.0/16"))
    SubnetManager(open_kv(e), prefix).acquire("n", IPv4Address("192.0.2.1"), {})
    assert "live leases fall outside the new one (n 10.1.1.0/24)" in one_line_error(
        init("--network", "10.2.0.0/16", "--force"))
    assert ok(init("--network", "10.1.0.0/16", "--backend", "vxlan", "--force")).startswith(
        f"cluster config replaced at {prefix}/config")


def test_commands_name_an_unreachable_etcd(prefix: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    error = one_line_error(pycni("node", "list", "--etcd-prefix", prefix, endpoint=dead))
    assert error.startswith(f"pycni: etcd is unreachable at {dead} ") and "connection refused" in error


def test_show_before_init_says_what_to_do(etcd_server: EtcdServer, prefix: str) -> None:
    error = one_line_error(pycni("cluster", "show", "--etcd-prefix", prefix, endpoint=etcd_server.endpoint))
    assert error == f"pycni: no cluster config at {prefix}/config; run 'pycni cluster init' first (code 7)"
