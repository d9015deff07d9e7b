"""A cluster of network namespaces: pods on different nodes talk, the outside world is reached through
masquerade, and the agents converge after nodes leave, agents restart and etcd restarts."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from ipaddress import IPv4Network
from pathlib import Path

from pycni.cluster.lab import Lab
from pycni.cluster.lab_state import OUTSIDE_IP
from tests.cluster.conftest import build_lab, leftovers
from tests.support.wait import wait_until

ROUTE_PROTO = "124"


def unreachable_pairs(lab: Lab) -> list[tuple[str, str]]:
    pods = sorted(lab.state.pods.values(), key=lambda p: p.name)
    return [(a.name, b.name) for a, b in itertools.permutations(pods, 2) if not lab.ping(a.name, b.ip)]


def kernel_mentions(lab: Lab, node: str, subnet: IPv4Network, underlay_ip: str) -> list[str]:
    """Routes, FDB entries and neighbours on ``node`` that point at ``subnet`` / ``underlay_ip``."""
    ns = lab.state.nodes[node].netns
    out = []
    routes = json.loads(lab.exec(node, ["ip", "-j", "route", "show", "proto", ROUTE_PROTO]).stdout or "[]")
    out += [f"route {r['dst']}" for r in routes if r["dst"] == str(subnet)]
    fdb = lab.exec(node, ["bridge", "fdb", "show", "dev", "pycni.1"]).stdout
    out += [f"fdb {line}" for line in fdb.splitlines() if f"dst {underlay_ip} " in line + " "]
    neigh = lab.exec(node, ["ip", "neigh", "show", "dev", "pycni.1"]).stdout
    out += [f"neigh {line}" for line in neigh.splitlines() if line.startswith(f"{subnet.network_address} ")]
    assert ns
    return out


def test_every_pod_pings_every_other_pod(lab: Lab) -> None:
    assert len(lab.state.pods) >= 6
    assert len({p.node for p in lab.state.pods.values()}) >= 3
    assert unreachable_pairs(lab) == []


def test_tcp_across_nodes(lab: Lab) -> None:
    server = lab.state.pods["n1-p1"]
    client = lab.state.pods["n3-p2"]
    script = (
        "import socket,sys;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
        "s.bind(('0.0.0.0',8080));s.listen();print('ready',flush=True);c,a=s.accept();"
        "c.sendall(b'hello from '+sys.argv[1].encode()+b' to '+a[0].encode());c.close()"
    )
    proc = subprocess.Popen(["ip", "netns", "exec", server.netns, sys.executable, "-c", script, server.name],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        got = lab.exec(client.name, [sys.executable, "-c",
                                     f"import socket;s=socket.create_connection(('{server.ip}',8080),timeout=5);"
                                     "print(s.recv(100).decode())"], check=True).stdout.strip()
        assert got == f"hello from {server.name} to {client.ip}"  # no NAT inside the cluster
    finally:
        proc.kill()
        proc.communicate()


def test_pods_reach_the_outside_world_through_masquerade(lab: Lab) -> None:
    pod = lab.state.pods["n2-p1"]
    node_ip = lab.state.nodes[pod.node].ip
    assert lab.ping(pod.name, str(OUTSIDE_IP), count=1)
    script = (
        "import socket;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
        "s.bind(('0.0.0.0',8081));s.listen();print('ready',flush=True);c,a=s.accept();c.sendall(a[0].encode())"
    )
    proc = subprocess.Popen(["ip", "netns", "exec", lab.state.outside_ns, sys.executable, "-c", script],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        seen = lab.exec(pod.name, [sys.executable, "-c",
                                   f"import socket;s=socket.create_connection(('{OUTSIDE_IP}',8081),timeout=5);"
                                   "print(s.recv(100).decode())"], check=True).stdout.strip()
        assert seen == node_ip  # the outside saw the node, never the pod
    finally:
        proc.kill()
        proc.communicate()
    # and the outside world knows no route to pods: without the masquerade they could not be answered
    assert "10.244." not in lab.exec("outside", ["ip", "route"]).stdout


def test_hand_deleted_state_is_repaired_and_stale_entries_are_swept(lab: Lab) -> None:
    subnet = lab.node_subnet("n2")
    assert subnet is not None
    lab.exec("n1", ["ip", "route", "del", str(subnet)], check=True)
    # Outside the cluster network (10.244.0.0/16): a node joining in another test may lease any subnet inside it.
    stale = "10.245.250.0/24"
    lab.exec("n1", ["ip", "route", "add", stale, "via", lab.state.nodes["n2"].ip, "proto", ROUTE_PROTO], check=True)
    lab.exec("n1", ["ip", "route", "add", "10.245.251.0/24", "via", lab.state.nodes["n2"].ip], check=True)
    if lab.state.backend == "vxlan":
        lab.exec("n1", ["ip", "neigh", "flush", "dev", "pycni.1"], check=True)
    took = wait_until(lambda: lab.owned_routes("n1") == {lab.node_subnet(n) for n in ("n2", "n3")}, 10)
    routes = lab.exec("n1", ["ip", "route"]).stdout
    assert "10.245.251.0/24" in routes  # not ours: left alone
    lab.exec("n1", ["ip", "route", "del", "10.245.251.0/24"], check=True)
    assert unreachable_pairs(lab) == []
    print(f"repaired in {took:.1f}s")


def test_agent_restart_keeps_existing_pods_connected(lab: Lab) -> None:
    a, b = lab.state.pods["n1-p2"], lab.state.pods["n2-p2"]
    before = lab.owned_routes("n1")
    pinger = subprocess.Popen(["ip", "netns", "exec", a.netns, "ping", "-i", "0.1", "-c", "40", "-W", "1", b.ip],
                              stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    lab.stop_agent("n1")
    time.sleep(0.5)
    lab.start_agent("n1")
    out, _ = pinger.communicate(timeout=30)
    assert " 0% packet loss" in out, out
    assert lab.owned_routes("n1") == before
    wait_until(lab.converged, 15)
    assert unreachable_pairs(lab) == []


def test_removing_a_node_clears_it_from_the_others_within_10s(lab: Lab) -> None:
    node = lab.add_node("gone")
    lab.add_pod("gone", "gone-p1")
    assert lab.ping("n1-p1", lab.state.pods["gone-p1"].ip)
    subnet = lab.node_subnet("gone")
    assert subnet is not None
    others = [n for n in lab.state.nodes if n != "gone"]
    assert others
    # every peer reaches the node: a route to its subnet, and on vxlan its FDB entry and neighbour too
    expected = {"route", "fdb", "neigh"} if lab.state.backend == "vxlan" else {"route"}
    for n in others:
        mentions = kernel_mentions(lab, n, subnet, node.ip)
        assert {m.split()[0] for m in mentions} == expected, (n, mentions)
    lab.remove_node("gone")
    wait_until(lambda: not any(kernel_mentions(lab, n, subnet, node.ip) for n in others), 10)
    assert lab.converged()


def test_etcd_restart_then_a_new_node_joins_and_everything_converges(lab: Lab) -> None:
    lab.stop_etcd()
    time.sleep(3)
    assert unreachable_pairs(lab) == []  # the data path does not depend on etcd
    lab.start_etcd()
    lab.add_node("late", wait=0)
    took = lab.wait_ready(30)
    lab.add_pod("late", "late-p1")
    print(f"after the etcd restart, the new node converged in {took:.1f}s")
    assert unreachable_pairs(lab) == []
    lab.remove_node("late")
    wait_until(lab.converged, 15)


def test_lab_down_removes_everything(tmp_path: Path) -> None:
    lab = build_lab(tmp_path, "vxlan", nodes=2, pods_per_node=1)
    lab_id = lab.state.id
    assert leftovers(lab_id)
    lab.down()
    assert leftovers(lab_id) == []
    assert not (tmp_path / lab_id).exists()
