"""A node that loses its lease (issue 16, item 4), in a lab: it gets its pods' subnet back when it can, moves when not.

docs/DESIGN.md "A node that loses its lease" has the decision. One vxlan
lab of three nodes with a pod each is shared by the module; each test
leaves the lab converged.

- The store forgets a node's record (a restored backup, keys deleted by
  hand) while a lower subnet is free: the restarted agent asks for the
  subnet of its subnet.env and gets it back, so its pods keep working.
- Another node holds the subnet when the agent comes back (the operator
  removed the node by mistake and a new node took it): the node moves to a
  free subnet, takes the old gateway off its bridge, lists the pod left on
  the old subnet in stranded-pods.json; new pods work, the subnet's new
  owner is reached from everywhere, and deleting the stranded pod clears
  the report.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Iterator
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import pytest

from pycni.cluster.conflist import render_subnet_env
from pycni.cluster.lab import PREFIX, Lab
from pycni.cluster.stranded import STRANDED_FILE
from pycni.cluster.subnets import SubnetManager
from tests.cluster.conftest import build_lab, leftovers
from tests.support.wait import wait_until

CONVERGE = 60.0  # generous: six engineers share two cores


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    the_lab = build_lab(tmp_path_factory.mktemp("lab-lease-loss"), "vxlan", nodes=3, pods_per_node=1)
    yield the_lab
    lab_id = the_lab.state.id
    the_lab.down()
    assert leftovers(lab_id) == []


def subnet_of(lab: Lab, node: str) -> IPv4Network:
    subnet = lab.node_subnet(node)
    assert subnet is not None, f"{node} has no subnet.env"
    return subnet


def bridge_addresses(lab: Lab, node: str) -> list[str]:
    out = lab.exec(node, ["ip", "-j", "-4", "addr", "show", "dev", "cni0"]).stdout
    return [f"{a['local']}/{a['prefixlen']}" for link in json.loads(out or "[]") for a in link["addr_info"]]


def stranded_report(lab: Lab, node: str) -> list[dict[str, str]] | None:
    path = Path(lab.state.node_dir(node)) / "run" / STRANDED_FILE
    return json.loads(path.read_text()) if path.exists() else None


def agent_logs(lab: Lab, *nodes: str) -> str:
    """The agents' logs without the kernel changes, for failure messages."""
    text = ""
    for node in nodes:
        lines = (Path(lab.state.node_dir(node)) / "agent.log").read_text(errors="replace").splitlines()
        text += f"\n--- {node}:\n" + "\n".join(line for line in lines if " INFO added " not in line
                                               and " INFO removed " not in line)
    return text


def leases(lab: Lab) -> dict[str, IPv4Network]:
    """Node -> subnet of the live leases in the lab's etcd."""
    return lab.with_kv(lambda kv: {lease.node: lease.subnet for lease in SubnetManager(kv, PREFIX).list_leases()[0]})


def test_a_node_whose_record_the_store_lost_gets_its_pods_subnet_back(lab: Lab) -> None:
    # Nodes start together, so which of n1 and n2 has the lower subnet varies; n3 is the next test's.
    lower, higher = sorted(("n1", "n2"), key=lambda node: subnet_of(lab, node))
    kept = subnet_of(lab, higher)
    lab.remove_node(lower)  # frees a subnet below `kept`: a node without a preference would take it
    lab.stop_agent(higher)

    def forget(kv: Any) -> None:
        manager = SubnetManager(kv, PREFIX)
        for key in (manager.subnet_key(kept), manager.history_key(kept)):
            manager.kv.delete(key)

    lab.with_kv(forget)
    lab.start_agent(higher)
    wait_until(lambda: higher in leases(lab), CONVERGE, f"{higher} to lease a subnet again")  # files are stale
    lab.wait_ready(CONVERGE)

    assert subnet_of(lab, higher) == kept == leases(lab)[higher], agent_logs(lab, higher)
    assert stranded_report(lab, higher) is None
    pod, peer = lab.state.pods[f"{higher}-p1"], lab.state.pods["n3-p1"]
    assert pod.ip is not None and peer.ip is not None
    assert lab.ping(pod.name, peer.ip) and lab.ping(peer.name, pod.ip)


def test_a_node_whose_subnet_another_node_took_moves_and_reports_the_pod_left_behind(lab: Lab) -> None:
    s3 = subnet_of(lab, "n3")
    old_pod = lab.state.pods["n3-p1"]
    assert old_pod.ip is not None and ipaddress.ip_address(old_pod.ip) in s3
    lab.stop_agent("n3")
    lab.with_kv(lambda kv: SubnetManager(kv, PREFIX).release("n3"))  # `pycni node remove n3`, by mistake
    # A new node n4 that was on s3 before (its subnet.env says so) takes it, as it may: n3 released it.
    n4_run = Path(lab.state.node_dir("n4")) / "run"
    os.makedirs(n4_run)
    (n4_run / "subnet.env").write_text(render_subnet_env(IPv4Network(lab.state.network), s3, 1450, "vxlan"))
    lab.add_node("n4", wait=0)  # the lab converges only once n3 is back
    wait_until(lambda: leases(lab).get("n4") == s3, CONVERGE, "n4 to lease s3")

    lab.start_agent("n3")
    wait_until(lambda: "n3" in leases(lab), CONVERGE, "n3 to lease a subnet again")
    lab.wait_ready(CONVERGE)

    moved = subnet_of(lab, "n3")
    assert moved != s3, agent_logs(lab, "n3", "n4")
    wait_until(lambda: stranded_report(lab, "n3") is not None, CONVERGE, "n3's stranded report")  # same pass
    assert [p["ip"] for p in stranded_report(lab, "n3") or []] == [old_pod.ip]
    wait_until(lambda: not any(ipaddress.ip_interface(a).ip in s3 for a in bridge_addresses(lab, "n3")),
               CONVERGE, "n3 to take s3's gateway off its bridge")
    new_pod = lab.add_pod("n3", "n3-p2")
    owner_pod = lab.add_pod("n4", "n4-p1")
    assert new_pod.ip is not None and ipaddress.ip_address(new_pod.ip) in moved
    assert owner_pod.ip is not None and ipaddress.ip_address(owner_pod.ip) in s3
    remote = next(p for p in lab.state.pods.values() if p.node in ("n1", "n2"))  # the one the first test left
    assert remote.ip is not None
    for src, dst in (("n3-p2", remote.ip), (remote.name, new_pod.ip), (remote.name, owner_pod.ip),
                     ("n3-p2", owner_pod.ip)):
        assert lab.ping(src, dst), f"{src} -> {dst}"

    lab.del_pod("n3-p1")  # what its runtime should do: recreate it (here: delete it)
    wait_until(lambda: stranded_report(lab, "n3") is None, CONVERGE, "the stranded report to clear")
