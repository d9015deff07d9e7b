"""Denied connections end up as JSON lines: a default deny enforced in a real kernel, NFLOG, the agent's log.

One node namespace with a bridge and two pods (``world.World``). A policy
agent (MemoryKV, this node's table applied in the node's namespace) enforces
a default deny for ingress in namespace x; the deny log listens to NFLOG
group 2 in the node's namespace. A TCP connection from x/a to x/b port 80
fails, and the line for it names both pods, the port and the isolating
policy; ``pycni policy log`` prints it, and the drop counter shows in the
metrics read from the kernel's table.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycni.cli.main import build_parser
from pycni.cli.policy import cmd_policy
from pycni.cluster.kv import Put
from pycni.net.firewall.nft import apply as nft_apply
from pycni.net.firewall.nft import list_json
from pycni.net.netns import run_in_netns
from pycni.policy.agent import PolicyAgent
from pycni.policy.compile import FAMILY, TABLE
from pycni.policy.denylog import start_log
from pycni.policy.endpoints import Endpoint, encode, endpoint_key
from pycni.policy.metrics import packet_counts
from pycni.policy.model import LabelSelector, Namespace, NetworkPolicy, Pod, labels_of
from pycni.testing.kv import MemoryKV
from tests.policy.world import World

pytestmark = pytest.mark.root

DENY = NetworkPolicy("x", "deny", LabelSelector(), frozenset({"Ingress"}))


@pytest.fixture
def world() -> Iterator[World]:
    w = World()
    try:
        yield w.build(("x/a", "x/b"))
    finally:
        w.close()


def wait_for(condition: object, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


def test_a_denied_connection_is_logged_with_pods_port_and_policy(world: World, tmp_path: Path) -> None:
    node_path = f"/run/netns/{world.node}"
    kv = MemoryKV()
    agent = PolicyAgent(kv, "n1", lambda script: run_in_netns(node_path, nft_apply, script), resync_seconds=3600)
    agent.store.apply([Namespace("x"), Pod("x", "a", labels_of({"pod": "a"})), Pod("x", "b", labels_of({"pod": "b"}))])
    kv.txn([], [Put(endpoint_key(agent.store.prefix, e), encode(e)) for e in (
        Endpoint("x", key.split("/")[1], "n1", pod.ips, f"cid-{key.replace('/', '-')}", "eth0")
        for key, pod in world.pods.items())])
    agent.start()
    deny_log = run_in_netns(node_path, start_log, agent, str(tmp_path))
    a, b = world.pods["x/a"], world.pods["x/b"]
    try:
        assert world.probe(a, b.ips[0], 80, "TCP")  # no policy yet
        agent.store.apply([DENY])
        wait_for(lambda: not world.probe(a, b.ips[0], 80, "TCP", timeout=0.2))
        log_path = tmp_path / "policy-denied.log"
        wait_for(lambda: log_path.exists() and log_path.read_text().strip())
        records = [json.loads(line) for line in log_path.read_text().splitlines()]
        listing = run_in_netns(node_path, list_json, f"table {FAMILY} {TABLE}")
    finally:
        deny_log.stop()
        agent.stop()
    record = records[0]
    assert {k: v for k, v in record.items() if k not in ("time", "srcPort")} == {
        "node": "n1", "direction": "ingress", "pod": "x/b", "srcIP": a.ips[0], "srcPod": "x/a",
        "dstIP": b.ips[0], "dstPod": "x/b", "port": 80, "protocol": "TCP", "isolatedBy": ["x/deny"]}
    assert isinstance(record["srcPort"], int) and record["time"].endswith("Z")

    args = build_parser().parse_args(["policy", "log", "--node-run-dir", str(tmp_path)])
    out = io.StringIO()
    assert cmd_policy(args, {}, out=out) == 0
    assert json.loads(out.getvalue().splitlines()[0]) == record

    counts = packet_counts(listing, ["x/deny"])
    assert counts.get(("x", "deny", "ingress", "drop"), 0) >= 1
