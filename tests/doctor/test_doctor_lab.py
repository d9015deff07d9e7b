"""``pycni doctor --json`` inside a lab node: a healthy node is clean; faults made by hand are each named by
their check id, with the root cause first, and the node is clean again once they are undone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pycni.cluster.lab import NETWORK_NAME, PREFIX, Lab
from tests.doctor.faults import HOST_WIDE, node_env
from tests.support.wait import wait_until

NODE = "n1"


def doctor(lab: Lab, *extra: str) -> tuple[int, dict[str, Any]]:
    """Run ``pycni doctor --json`` in the node's namespace with the node's paths: (exit code, document).

    Checks of host-wide state, which other tests change meanwhile, are ignored (tests.doctor.faults)."""
    d = lab.state.node_dir(NODE)
    cmd = ["ip", "netns", "exec", lab.state.nodes[NODE].netns, sys.executable, "-m", "pycni", "doctor", "--json",
           "--node-name", NODE, "--etcd-endpoints", lab.state.etcd_endpoint, "--etcd-prefix", PREFIX,
           "--cni-conf-dir", os.path.join(d, "net.d"), "--run-dir", os.path.join(d, "run"),
           "--ipam-data-dir", os.path.join(d, "ipam"), "--cni-bin-dir", os.path.join(lab.state.dir, "bin"),
           "--cache-dir", os.path.join(d, "cache"), "--network-name", NETWORK_NAME,
           *(f"--ignore={cid}" for cid in sorted(HOST_WIDE)), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, env=node_env(lab, NODE))
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def problems(doc: dict[str, Any]) -> list[str]:
    """Ids of failing checks, in report order."""
    return [c["id"] for c in doc["checks"] if c["status"] == "fail"]


def check(doc: dict[str, Any], check_id: str) -> dict[str, Any]:
    return next(c for c in doc["checks"] if c["id"] == check_id)


def node_exec(lab: Lab, *cmd: str) -> None:
    lab.exec(NODE, list(cmd), check=True)


def assert_clean(lab: Lab) -> None:
    code, doc = doctor(lab)
    assert (code, problems(doc)) == (0, []), json.dumps(doc, indent=1)


@contextmanager
def agent_stopped(lab: Lab) -> Iterator[None]:
    """The node's agent stopped for the block, then started again and given time to reconcile."""
    lab.stop_agent(NODE)
    try:
        yield
    finally:
        started = time.time()
        lab.start_agent(NODE)
        status = os.path.join(lab.state.node_dir(NODE), "run", "agent.json")

        def reconciled() -> bool:
            try:
                with open(status, encoding="utf-8") as f:
                    return bool(json.load(f)["lastReconcile"] > started)
            except (OSError, ValueError, KeyError):
                return False

        wait_until(reconciled, 60, "the restarted agent's first reconcile", step=0.2)
        lab.wait_ready(60)


def test_a_healthy_node_passes_every_check_with_probes(lab: Lab) -> None:
    code, doc = doctor(lab, "--probe")
    assert code == 0, json.dumps(doc, indent=1)
    assert doc["node"] == NODE
    statuses = {c["id"]: c["status"] for c in doc["checks"] if c["id"] not in HOST_WIDE}
    assert {s for s in statuses.values()} == {"pass"}, statuses
    assert set(doc["checks"][0]) == {"id", "status", "summary", "evidence", "fix"}
    assert "1 peer(s) answer pings" in check(doc, "peer-state")["summary"]


def test_a_removed_plugin_is_plugin_missing(lab: Lab) -> None:
    plugin = os.path.join(lab.state.dir, "bin", "portmap")
    shutil.move(plugin, plugin + ".away")
    try:
        code, doc = doctor(lab)
        assert (code, problems(doc)) == (1, ["plugin-missing"])
        assert check(doc, "plugin-missing")["evidence"] == [
            f'failed to find plugin "portmap" in path [{os.path.dirname(plugin)}]']
        assert check(doc, "synthetic-pod")["status"] == "skip"
    finally:
        shutil.move(plugin + ".away", plugin)
    assert_clean(lab)


def test_a_stopped_agent_comes_first_then_ip_forward_off(lab: Lab) -> None:
    with agent_stopped(lab):
        code, doc = doctor(lab)
        assert (code, problems(doc)) == (1, ["agent-down"])
        node_exec(lab, "sysctl", "-qw", "net.ipv4.ip_forward=0")
        try:
            code, doc = doctor(lab)
            assert (code, problems(doc)) == (1, ["agent-down", "ip-forward"])
            assert check(doc, "ip-forward")["fix"].startswith("sysctl -w net.ipv4.ip_forward=1")
        finally:
            node_exec(lab, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    assert_clean(lab)


def test_a_foreign_forward_drop_is_forward_drop(lab: Lab) -> None:
    table = f"doctor{os.getpid()}"
    node_exec(lab, "nft", "add", "table", "ip", table)
    try:
        node_exec(lab, "nft", "add", "chain", "ip", table, "fw",
                  "{ type filter hook forward priority 0; policy drop; }")
        code, doc = doctor(lab)
        assert (code, problems(doc)) == (1, ["forward-drop"])
        assert check(doc, "forward-drop")["evidence"] == [f"ip {table} fw: policy drop"]
    finally:
        node_exec(lab, "nft", "delete", "table", "ip", table)
    assert_clean(lab)


def test_a_leaked_reservation_is_ipam_leak(lab: Lab) -> None:
    subnet = lab.node_subnet(NODE)
    assert subnet is not None
    path = os.path.join(lab.state.node_dir(NODE), "ipam", NETWORK_NAME, str(subnet[200]))
    with open(path, "x", encoding="utf-8", newline="") as f:
        f.write("doctor-test-dead-container\r\neth0")
    try:
        code, doc = doctor(lab)
        assert (code, problems(doc)) == (1, ["ipam-leak"])
        assert check(doc, "ipam-leak")["evidence"] == [f"{path}: doctor-test-dead-container eth0"]
    finally:
        os.unlink(path)
    assert_clean(lab)
