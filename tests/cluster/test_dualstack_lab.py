"""A dual-stack lab (issue 16 item 3): pods on different nodes ping each other over IPv4 and IPv6, with
vxlan (a second VXLAN device over the IPv6 underlay) and host-gw (IPv6 routes via the peers' IPv6 addresses)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Iterator
from ipaddress import IPv4Network, IPv6Address, IPv6Network
from pathlib import Path

import pytest

from pycni.cluster.config import ClusterConfig
from pycni.cluster.conflist import render_subnet_env
from pycni.cluster.lab import Lab
from pycni.cluster.lab_dualstack import NETWORK6, OUTSIDE6_IP, UNDERLAY6, node_ipv6, node_subnet6
from pycni.cluster.subnets import SubnetManager
from tests.cluster.conftest import _missing, leftovers
from tests.support.wait import wait_until


@pytest.fixture(scope="module", params=["vxlan", "host-gw"])
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if _missing() is not None:
        pytest.skip(_missing() or "")
    root: Path = tmp_path_factory.mktemp(f"dual-{request.param}")
    lab = Lab.up(3, request.param, root=str(root), ipv6=True)
    try:
        for node in sorted(lab.state.nodes):
            lab.add_pod(node, f"{node}-p1")
        yield lab
    finally:
        lab_id = lab.state.id
        lab.down()
        assert leftovers(lab_id) == []


def _unreachable(lab: Lab, family: int) -> list[tuple[str, str]]:
    pods = sorted(lab.state.pods.values(), key=lambda p: p.name)
    return [(a.name, b.name) for a, b in itertools.permutations(pods, 2)
            if not lab.ping(a.name, b.ip if family == 4 else b.ipv6)]


def test_every_pod_pings_every_other_pod_over_both_families(lab: Lab) -> None:
    pods = list(lab.state.pods.values())
    assert len({p.node for p in pods}) == 3
    assert all(p.ipv6 and IPv6Address(p.ipv6) in NETWORK6 for p in pods)
    assert _unreachable(lab, 4) == []
    # a pod's IPv6 address may still be tentative (duplicate address detection) for a moment after ADD
    wait_until(lambda: _unreachable(lab, 6) == [], 30, "IPv6 pings between every pair of pods", step=1)


def test_each_lease_carries_the_paired_ipv6_subnet_and_the_nodes_ipv6_address(lab: Lab) -> None:
    def read(kv: object) -> tuple[ClusterConfig, list[object]]:
        sm = SubnetManager(kv, "/pycni")  # type: ignore[arg-type]
        return sm.load_config(), list(sm.list_leases()[0])

    cfg, leases = lab.with_kv(read)
    assert cfg.ipv6 is not None and cfg.ipv6.network == NETWORK6
    for lease in leases:
        v6 = lease.v6  # type: ignore[attr-defined]
        assert v6 is not None
        assert v6.subnet == cfg.ipv6_subnet_for(lease.subnet)  # type: ignore[attr-defined]
        assert v6.public_ip in UNDERLAY6
        if lab.state.backend == "vxlan":
            assert v6.backend_data["vtepMAC"]


def test_the_conflist_gives_pods_both_ranges(lab: Lab) -> None:
    node = sorted(lab.state.nodes)[0]
    path = Path(lab.state.node_dir(node)) / "net.d" / "00-pycni-cluster.conflist"
    ranges = json.loads(path.read_text())["plugins"][0]["ipam"]["ranges"]
    assert len(ranges) == 2
    assert IPv6Network(ranges[1][0]["subnet"]).subnet_of(NETWORK6)


def test_the_ipv6_overlay_has_its_own_device_or_routes_via_the_underlay(lab: Lab) -> None:
    node = sorted(lab.state.nodes)[0]
    routes = json.loads(lab.exec(node, ["ip", "-j", "-6", "route", "show", "proto", "124"]).stdout or "[]")
    assert len(routes) == 2
    if lab.state.backend == "vxlan":
        assert {r["dev"] for r in routes} == {"pycni6.1"}
        details = json.loads(lab.exec(node, ["ip", "-j", "-d", "link", "show", "pycni6.1"]).stdout)[0]
        info = details["linkinfo"]["info_data"]
        assert IPv6Address(info.get("local6") or info["local"]) in UNDERLAY6
    else:
        assert {r["dev"] for r in routes} == {"eth0"}
        assert all(IPv6Address(r["gateway"]) in UNDERLAY6 for r in routes)


def test_pods_reach_the_ipv6_outside_world_through_masquerade(lab: Lab) -> None:
    pod = lab.state.pods["n2-p1"]
    node = lab.state.nodes[pod.node]
    script = (
        "import socket;s=socket.socket(socket.AF_INET6);s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
        "s.bind(('::',8081));s.listen();print('ready',flush=True);c,a=s.accept();c.sendall(a[0].encode())"
    )
    proc = subprocess.Popen(["ip", "netns", "exec", lab.state.outside_ns, sys.executable, "-c", script],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        seen = lab.exec(pod.name, [sys.executable, "-c",
                                   f"import socket;s=socket.create_connection(('{OUTSIDE6_IP}',8081),timeout=5);"
                                   "print(s.recv(100).decode())"], check=True).stdout.strip()
        assert IPv6Address(seen) == node_ipv6(node.index)  # the outside saw the node, never the pod
    finally:
        proc.kill()
        proc.communicate()
    assert "fd00:10:244" not in lab.exec("outside", ["ip", "-6", "route"]).stdout


def _leases(lab: Lab) -> dict[str, IPv4Network]:
    return lab.with_kv(lambda kv: {lease.node: lease.subnet for lease in SubnetManager(kv, "/pycni").list_leases()[0]})


def _bridge_ipv6(lab: Lab, node: str) -> list[IPv6Address]:
    out = lab.exec(node, ["ip", "-j", "-6", "addr", "show", "dev", "cni0"]).stdout
    return [IPv6Address(a["local"]) for link in json.loads(out or "[]") for a in link.get("addr_info", [])]


def test_a_node_that_moves_takes_its_old_ipv6_gateway_off_its_bridge(lab: Lab) -> None:
    """Last in the module: it changes the lab. Without it, the old /64 on n3's bridge would capture n3's
    traffic for the pods of the subnet's new owner."""
    s3, s3v6 = lab.node_subnet("n3"), node_subnet6(lab.state, "n3")
    assert s3 is not None and s3v6 is not None
    lab.stop_agent("n3")
    lab.with_kv(lambda kv: SubnetManager(kv, "/pycni").release("n3"))  # `pycni node remove n3`, by mistake
    n4_run = Path(lab.state.node_dir("n4")) / "run"  # n4 was on s3 before: its subnet.env says so
    n4_run.mkdir(parents=True)
    (n4_run / "subnet.env").write_text(render_subnet_env(IPv4Network(lab.state.network), s3, 1430,
                                                         lab.state.backend))
    lab.add_node("n4", wait=0)
    wait_until(lambda: _leases(lab).get("n4") == s3, 60, "n4 to lease s3", step=0.5)
    lab.start_agent("n3")
    wait_until(lambda: "n3" in _leases(lab), 60, "n3 to lease a subnet again", step=0.5)
    lab.wait_ready(60)
    assert node_subnet6(lab.state, "n4") == s3v6
    wait_until(lambda: not any(ip in s3v6 for ip in _bridge_ipv6(lab, "n3")), 30,
               "n3 to take the old IPv6 gateway off its bridge", step=0.5)
    mover, owner = lab.add_pod("n3", "n3-p2"), lab.add_pod("n4", "n4-p1")
    assert IPv6Address(owner.ipv6) in s3v6 and IPv6Address(mover.ipv6) not in s3v6
    wait_until(lambda: lab.ping("n3-p2", owner.ipv6) and lab.ping("n1-p1", owner.ipv6)
               and lab.ping("n4-p1", mover.ipv6), 30, "IPv6 pings between the moved node, the new owner and n1",
               step=1)
