"""An IPv6-only lab (issue 16 item 3, ``EnableIPv4: false``): nodes and pods have no IPv4 address, etcd is
reached over IPv6, and pods on different nodes reach each other over vxlan (only the IPv6 VXLAN device) and
host-gw (routes via the peers' IPv6 underlay addresses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path

import pytest

from pycni.cluster.config import ClusterConfig
from pycni.cluster.conflist import render_subnet_env
from pycni.cluster.lab import Lab
from pycni.cluster.lab_dualstack import NETWORK6, OUTSIDE6_IP, UNDERLAY6, node_ipv6
from pycni.cluster.lease import Lease
from pycni.cluster.subnets import SubnetManager
from tests.cluster.conftest import _missing, leftovers
from tests.doctor.faults import HOST_WIDE
from tests.support.wait import wait_until


@pytest.fixture(scope="module", params=["vxlan", "host-gw"])
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if _missing() is not None:
        pytest.skip(_missing() or "")
    root: Path = tmp_path_factory.mktemp(f"v6only-{request.param}")
    lab = Lab.up(2, request.param, root=str(root), ipv6_only=True)
    try:
        for node in sorted(lab.state.nodes):
            lab.add_pod(node, f"{node}-p1")
        yield lab
    finally:
        lab_id = lab.state.id
        lab.down()
        assert leftovers(lab_id) == []


def _ipv4_addresses(lab: Lab, name: str) -> list[str]:
    out = lab.exec(name, ["ip", "-j", "-4", "addr", "show"], check=True).stdout
    return [a["local"] for link in json.loads(out or "[]") for a in link.get("addr_info", []) if link["ifname"] != "lo"]


def test_nodes_and_pods_have_no_ipv4_address(lab: Lab) -> None:
    for name in [*lab.state.nodes, *lab.state.pods]:
        assert _ipv4_addresses(lab, name) == [], name
    for pod in lab.state.pods.values():
        assert IPv6Address(pod.ip) in NETWORK6 and pod.ipv6 == pod.ip


def test_pods_on_different_nodes_ping_and_connect_over_ipv6(lab: Lab) -> None:
    a, b = lab.state.pods["n1-p1"], lab.state.pods["n2-p1"]
    # a pod's address may still be tentative (duplicate address detection) for a moment after ADD
    wait_until(lambda: lab.ping(a.name, b.ip) and lab.ping(b.name, a.ip), 30, "IPv6 pings both ways", step=1)
    server = ("import socket;s=socket.socket(socket.AF_INET6);s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
              "s.bind(('::',8080));s.listen();print('ready',flush=True);c,p=s.accept();c.sendall(p[0].encode())")
    proc = subprocess.Popen(lab.exec_argv(b.name, [sys.executable, "-c", server]), stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        seen = lab.exec(a.name, [sys.executable, "-c", f"import socket;s=socket.create_connection(('{b.ip}',8080),"
                                 "timeout=5);print(s.recv(100).decode())"], check=True).stdout.strip()
        assert IPv6Address(seen) == IPv6Address(a.ip)  # inside the cluster: no masquerade
    finally:
        proc.kill()
        proc.communicate()


def test_leases_are_keyed_by_the_ipv6_subnet_and_carry_the_nodes_ipv6_address(lab: Lab) -> None:
    def read(kv: object) -> tuple[ClusterConfig, list[Lease]]:
        sm = SubnetManager(kv, "/pycni")  # type: ignore[arg-type]
        return sm.load_config(), sm.list_leases()[0]

    cfg, leases = lab.with_kv(read)
    assert cfg.network is None and cfg.to_wire()["EnableIPv4"] is False and cfg.lease_network == NETWORK6
    assert sorted(lease.node for lease in leases) == ["n1", "n2"]
    for lease in leases:
        assert isinstance(lease.subnet, IPv6Network) and lease.subnet.subnet_of(NETWORK6)
        assert lease.key.endswith(f"/subnets/{lease.subnet.network_address}-64")
        assert lease.public_ip == node_ipv6(lab.state.nodes[lease.node].index) and lease.public_ip in UNDERLAY6
        assert lease.v6 is not None and lease.v6.subnet == lease.subnet


def test_the_conflist_and_subnet_env_have_only_ipv6(lab: Lab) -> None:
    run = Path(lab.state.node_dir("n1"))
    ipam = json.loads((run / "net.d" / "00-pycni-cluster.conflist").read_text())["plugins"][0]["ipam"]
    assert [[IPv6Network(r["subnet"]).subnet_of(NETWORK6) for r in rs] for rs in ipam["ranges"]] == [[True]]
    assert ipam["routes"] == [{"dst": "::/0"}]
    env = (run / "run" / "subnet.env").read_text()
    assert "PYCNI_IPV6_SUBNET=" in env and "PYCNI_SUBNET=" not in env and "PYCNI_NETWORK=" not in env


def test_the_overlay_is_ipv6_alone(lab: Lab) -> None:
    routes = json.loads(lab.exec("n1", ["ip", "-j", "-6", "route", "show", "proto", "124"]).stdout or "[]")
    assert len(routes) == 1
    assert lab.exec("n1", ["ip", "-4", "route", "show", "proto", "124"]).stdout.strip() == ""
    links = {link["ifname"] for link in json.loads(lab.exec("n1", ["ip", "-j", "link", "show"]).stdout)}
    if lab.state.backend == "vxlan":
        assert routes[0]["dev"] == "pycni6.1" and "pycni.1" not in links
    else:
        assert routes[0]["dev"] == "eth0" and IPv6Address(routes[0]["gateway"]) in UNDERLAY6


def test_pods_reach_the_ipv6_outside_world_as_their_node(lab: Lab) -> None:
    pod = lab.state.pods["n2-p1"]
    script = ("import socket;s=socket.socket(socket.AF_INET6);s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
              "s.bind(('::',8081));s.listen();print('ready',flush=True);c,a=s.accept();c.sendall(a[0].encode())")
    proc = subprocess.Popen(["ip", "netns", "exec", lab.state.outside_ns, sys.executable, "-c", script],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        seen = lab.exec(pod.name, [sys.executable, "-c", f"import socket;s=socket.create_connection(('{OUTSIDE6_IP}',"
                                   "8081),timeout=5);print(s.recv(100).decode())"], check=True).stdout.strip()
        assert IPv6Address(seen) == node_ipv6(lab.state.nodes["n2"].index)
    finally:
        proc.kill()
        proc.communicate()


def test_del_releases_the_pods_address(lab: Lab) -> None:
    pod = lab.add_pod("n1", "n1-gone")
    reservations = Path(lab.state.node_dir("n1")) / "ipam" / "pycni"
    assert pod.ip in os.listdir(reservations)
    lab.del_pod("n1-gone")
    assert pod.ip not in os.listdir(reservations)


def test_doctor_finds_an_ipv6_only_node_healthy(lab: Lab) -> None:
    """``pycni lab doctor`` (probes on: pings and a don't-fragment ping at pod MTU - 48 over IPv6)."""
    proc = subprocess.run([sys.executable, "-m", "pycni", "lab", "--root", lab.state.root, "--lab", lab.state.id,
                           "doctor", "n1", *(f"--ignore={cid}" for cid in sorted(HOST_WIDE))],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    passed = {line.split()[1] for line in proc.stdout.splitlines() if line.startswith("✔")}
    assert {"datastore", "cidr-mismatch", "node-ip", "ip-forward", "peer-state", "vtep-mac", "mtu", "bridge-stale-addr",
            "ipam-exhausted"} <= passed
    assert "1 peer(s) answer pings" in proc.stdout


def _leases(lab: Lab) -> dict[str, object]:
    return lab.with_kv(lambda kv: {lease.node: lease.subnet for lease in SubnetManager(kv, "/pycni").list_leases()[0]})


def _bridge_addresses(lab: Lab, node: str) -> list[IPv6Address]:
    out = lab.exec(node, ["ip", "-j", "-6", "addr", "show", "dev", "cni0"]).stdout
    return [IPv6Address(a["local"]) for link in json.loads(out or "[]") for a in link.get("addr_info", [])]


def test_a_node_that_loses_its_subnet_moves_and_reports_its_stranded_pod(lab: Lab) -> None:
    """Last in the module: it changes the lab. n2's lease is released by mistake while its agent is down and
    n3, whose subnet.env says it held that subnet, takes it: n2 moves to a new IPv6 subnet, takes the old
    gateway off its bridge and reports its pod left on the old one; new pods on both reach each other."""
    old = lab.node_subnet("n2")
    assert isinstance(old, IPv6Network)
    lab.stop_agent("n2")
    lab.with_kv(lambda kv: SubnetManager(kv, "/pycni").release("n2"))
    n3_run = Path(lab.state.node_dir("n3")) / "run"
    n3_run.mkdir(parents=True)
    (n3_run / "subnet.env").write_text(render_subnet_env(None, None, 1430, lab.state.backend, ipv6=(NETWORK6, old)))
    lab.add_node("n3", wait=0)
    wait_until(lambda: _leases(lab).get("n3") == old, 60, "n3 to lease n2's old subnet", step=0.5)
    lab.start_agent("n2")
    wait_until(lambda: _leases(lab).get("n2") not in (None, old), 60, "n2 to lease another subnet", step=0.5)
    lab.wait_ready(60)
    wait_until(lambda: not any(ip in old for ip in _bridge_addresses(lab, "n2")), 30,
               "n2 to take the old IPv6 gateway off its bridge", step=0.5)
    stranded = Path(lab.state.node_dir("n2")) / "run" / "stranded-pods.json"
    wait_until(stranded.exists, 30, "n2 to report its stranded pod", step=0.5)
    assert [p["ip"] for p in json.loads(stranded.read_text())] == [lab.state.pods["n2-p1"].ip]
    mover, owner = lab.add_pod("n2", "n2-p2"), lab.add_pod("n3", "n3-p1")
    assert IPv6Address(owner.ip) in old and IPv6Address(mover.ip) not in old
    wait_until(lambda: lab.ping("n2-p2", owner.ip) and lab.ping("n1-p1", owner.ip) and lab.ping("n3-p1", mover.ip),
               30, "IPv6 pings between the moved node, the new owner and n1", step=1)
