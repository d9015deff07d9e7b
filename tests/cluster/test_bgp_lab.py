"""The bgp backend on real namespaces with bird2: a mesh lab and a route-reflector lab, each with the ToR.

One lab per mode, shared by the module's tests (3 nodes, one pod each).
Tests that disturb a lab (kill bird, remove a node) come last in their
section and leave it converged. Needs root, etcd, ping and bird2.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import pytest

from pycni.cluster.lab import Lab
from pycni.cluster.lab_bgp import node_bird
from tests.cluster.conftest import leftovers
from tests.support.prerequisites import skip_or_fail
from tests.support.wait import wait_until


@pytest.fixture(autouse=True)
def _bird() -> None:
    if shutil.which("bird") is None:
        skip_or_fail("needs bird (Debian: bird2)", "bgp lab prerequisite missing: bird (Debian: bird2)")


def _build(root: Path, route_reflectors: tuple[str, ...] = ()) -> Lab:
    lab = Lab.up(3, "bgp", root=str(root), route_reflectors=route_reflectors, wait=90)
    try:
        for node in sorted(lab.state.nodes):
            lab.add_pod(node, f"{node}-p1")
    except BaseException:
        lab.down()
        raise
    return lab


def _teardown(lab: Lab) -> None:
    lab_id = lab.state.id
    lab.down()
    assert leftovers(lab_id) == []


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if shutil.which("bird") is None:
        pytest.skip("needs bird")
    lab = _build(tmp_path_factory.mktemp("bgp-mesh"))
    yield lab
    _teardown(lab)


@pytest.fixture(scope="module")
def reflected(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if shutil.which("bird") is None:
        pytest.skip("needs bird")
    lab = _build(tmp_path_factory.mktemp("bgp-rr"), route_reflectors=("n1",))
    yield lab
    _teardown(lab)


def unreachable_pairs(lab: Lab) -> list[tuple[str, str]]:
    pods = sorted(lab.state.pods.values(), key=lambda p: p.name)
    return [(a.name, b.name) for a, b in itertools.permutations(pods, 2) if not lab.ping(a.name, b.ip)]


def bird_routes(lab: Lab, node: str) -> dict[str, str]:
    """``dst -> gateway`` of the routes bird installed on ``node`` (proto bird)."""
    routes = json.loads(lab.exec(node, ["ip", "-j", "-4", "route", "show", "proto", "bird"]).stdout or "[]")
    return {r["dst"]: r.get("gateway", "") for r in routes}


def node_status(lab: Lab, node: str) -> dict[str, Any]:
    """``pycni node status -o json`` run on ``node``."""
    run_dir = os.path.join(lab.state.node_dir(node), "run")
    out = lab.exec(node, [sys.executable, "-m", "pycni", "node", "status", "-o", "json", "--run-dir", run_dir])
    assert out.returncode == 0, out.stderr + out.stdout
    status: dict[str, Any] = json.loads(out.stdout)
    return status


def peers(lab: Lab, node: str, *fields: str) -> set[tuple[str, ...]]:
    return {tuple(p[f] for f in fields) for p in node_status(lab, node)["peers"]}


def tor_routes(lab: Lab) -> set[IPv4Network]:
    """The pod subnets the ToR's bird has, from ``birdc show route`` as ``pycni lab exec tor`` runs it."""
    out = lab.exec("tor", ["birdc", "show", "route"], check=True).stdout
    return {IPv4Network(line.split()[0]) for line in out.splitlines() if line[:1].isdigit()}


def subnets(lab: Lab) -> dict[str, IPv4Network]:
    found = {name: lab.node_subnet(name) for name in lab.state.nodes}
    assert all(found.values())
    return {name: s for name, s in found.items() if s is not None}


# -- full mesh ------------------------------------------------------------------------------------------


def test_mesh_pods_ping_over_bgp_routes_without_an_overlay(mesh: Lab) -> None:
    assert unreachable_pairs(mesh) == []
    own = subnets(mesh)
    for name in mesh.state.nodes:
        others = {str(s): mesh.state.nodes[n].ip for n, s in own.items() if n != name}
        assert bird_routes(mesh, name) == others  # each via the owner's underlay address, straight
        links = json.loads(mesh.exec(name, ["ip", "-j", "-d", "link"]).stdout)
        kinds = {link.get("linkinfo", {}).get("info_kind") for link in links}
        assert kinds <= {None, "veth", "bridge"}, kinds  # no vxlan, no tunnel
        agent = json.loads(mesh.exec(name, ["ip", "-j", "route", "show", "proto", "124"]).stdout or "[]")
        assert agent == []  # the agent routes nothing itself: bird owns these routes


def test_mesh_node_status_lists_every_session_established(mesh: Lab) -> None:
    assert node_status(mesh, "n2")["running"] is True
    ips = {n: mesh.state.nodes[n].ip for n in mesh.state.nodes}
    assert peers(mesh, "n2", "peerAddress", "peerType", "info") == {
        (ips["n1"], "node-to-node mesh", "Established"), (ips["n3"], "node-to-node mesh", "Established"),
        (str(mesh.state.etcd_ip), "global", "Established")}


def test_tor_learns_every_pod_subnet(mesh: Lab) -> None:
    assert tor_routes(mesh) == set(subnets(mesh).values())
    # and routes them: the outside world reaches a pod through the ToR, no NAT in between
    assert mesh.ping("outside", mesh.state.pods["n2-p1"].ip)


def reconciled_since(lab: Lab, node: str, since: float) -> bool:
    """Whether the node's agent finished a reconcile after ``since`` (its metrics, on 127.0.0.1:9100)."""
    script = ("import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:9100/metrics',timeout=2)"
              ".read().decode())")
    out = lab.exec(node, [sys.executable, "-c", script]).stdout
    stamps = [float(line.split()[-1]) for line in out.splitlines()
              if line.startswith("pycni_agent_last_reconcile_timestamp_seconds")]
    return bool(stamps) and stamps[0] > since


def test_agent_restart_leaves_bird_and_its_routes_alone(mesh: Lab) -> None:
    bird = node_bird(mesh.state, "n1")
    pid, routes = bird.pid(), bird_routes(mesh, "n1")
    mesh.stop_agent("n1")
    assert bird.pid() == pid  # bird outlives the agent, as Calico's bird outlives felix
    log = Path(mesh.state.node_dir("n1"), "agent.log")
    logged = len(log.read_text(encoding="utf-8"))
    restarted = time.time()
    mesh.start_agent("n1")
    wait_until(lambda: reconciled_since(mesh, "n1", restarted), timeout=60, what="the restarted agent's reconcile",
               step=0.2)
    assert bird.pid() == pid and bird_routes(mesh, "n1") == routes
    assert "bird" not in log.read_text(encoding="utf-8")[logged:]  # same leases, same config: nothing to tell bird


def test_killed_bird_is_restarted_and_pods_keep_their_routes(mesh: Lab) -> None:
    bird = node_bird(mesh.state, "n2")
    pid = bird.pid()
    assert pid is not None
    before = bird_routes(mesh, "n2")
    src, dst = mesh.state.pods["n1-p1"], mesh.state.pods["n2-p1"]
    ping = subprocess.Popen(mesh.exec_argv(src.name, ["ping", "-i", "0.2", "-c", "40", "-W", "2", dst.ip]),
                            stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        os.kill(pid, signal.SIGKILL)
        gaps = []

        def restarted() -> bool:
            if bird_routes(mesh, "n2") != before:
                gaps.append(time.monotonic())
            new = bird.pid()
            return new is not None and new != pid

        wait_until(restarted, timeout=60, what="the agent to restart n2's bird", step=0.1)
        assert gaps == []  # n2's kernel routes stayed while bird was down (persist) and after (-R)
        out, _ = ping.communicate(timeout=60)
    finally:
        if ping.poll() is None:
            ping.kill()
    received = int(out.split(" received")[0].rsplit(",", 1)[1])
    assert received >= 38, out  # no black hole across the restart (a loaded machine may lose a packet or two)
    wait_until(lambda: {info for (info,) in peers(mesh, "n2", "info")} == {"Established"}, timeout=60,
               what="n2's sessions to come back", step=0.5)
    assert bird_routes(mesh, "n2") == before
    assert unreachable_pairs(mesh) == []


def test_removed_node_is_withdrawn_everywhere_within_10s(mesh: Lab) -> None:
    gone = subnets(mesh)["n3"]
    start = time.monotonic()
    mesh.remove_node("n3")

    def withdrawn() -> bool:
        return gone not in tor_routes(mesh) and all(str(gone) not in bird_routes(mesh, n) for n in mesh.state.nodes)

    wait_until(withdrawn, timeout=30, what=f"{gone} to be withdrawn", step=0.1)
    assert time.monotonic() - start < 10
    assert unreachable_pairs(mesh) == []


# -- route reflectors -------------------------------------------------------------------------------------


def test_reflector_lab_converges_and_clients_reach_each_other(reflected: Lab) -> None:
    assert unreachable_pairs(reflected) == []
    own = subnets(reflected)
    for name in reflected.state.nodes:
        others = {str(s): reflected.state.nodes[n].ip for n, s in own.items() if n != name}
        assert bird_routes(reflected, name) == others  # reflected routes keep the owner as next hop
    assert tor_routes(reflected) == set(own.values())


def test_clients_peer_only_with_the_reflector(reflected: Lab) -> None:
    ips = {n: reflected.state.nodes[n].ip for n in reflected.state.nodes}
    tor = str(reflected.state.etcd_ip)
    for client in ("n2", "n3"):
        assert peers(reflected, client, "peerAddress", "peerType") == {(ips["n1"], "route reflector"), (tor, "global")}
    assert peers(reflected, "n1", "peerAddress", "peerType") == {
        (ips["n2"], "reflector client"), (ips["n3"], "reflector client"), (tor, "global")}
