"""Denied-connection records: prefixes, names from the state and the compiled ruleset, the file and its rotation."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from pycni.net.firewall.nflog import LoggedPacket
from pycni.policy.agent import PolicyAgent
from pycni.policy.compile import NodeView, compile_node
from pycni.policy.denylog import DenyLog, DenyLogWriter, context_of, denied_record, parse_prefix
from pycni.policy.endpoints import Endpoint
from pycni.policy.model import LabelSelector, Namespace, NetworkPolicy, Pod, labels_of
from pycni.testing.kv import MemoryKV

DENY = NetworkPolicy("x", "deny", LabelSelector(), frozenset({"Ingress"}))
DENY_B = NetworkPolicy("x", "deny-b", LabelSelector(labels_of({"pod": "b"})), frozenset({"Ingress", "Egress"}))
PODS = [Pod("x", "a", labels_of({"pod": "a"}), (), ("10.244.1.10", "fd00:1::10"), "n1"),
        Pod("x", "b", labels_of({"pod": "b"}), (), ("10.244.1.11",), "n1"),
        Pod("x", "r", labels_of({"pod": "r"}), (), ("10.244.2.10",), "n2")]
PACKET = LoggedPacket(2, "pycni D I x/b ", 4, "10.244.1.10", "10.244.1.11", "TCP", 40000, 80, None, 3, 4)


def test_parse_prefix() -> None:
    assert parse_prefix("pycni D I x/b ") == ("Ingress", "x/b")
    assert parse_prefix("pycni D E ns-1/pod-2 ") == ("Egress", "ns-1/pod-2")
    for other in ("pycni A I x/b ", "pycni D X x/b ", "calico D I x/b", "pycni D I nopod ", ""):
        assert parse_prefix(other) is None


def test_records_name_the_pods_and_the_isolating_policies_from_the_ruleset() -> None:
    ruleset = compile_node(NodeView("n1", {"x": Namespace("x")}, PODS, [DENY, DENY_B]))
    context = context_of("n1", ruleset.chains, PODS, ["x/deny", "x/deny-b"])
    assert context.isolating == {("x/a", "Ingress"): ("x/deny",), ("x/b", "Ingress"): ("x/deny", "x/deny-b"),
                                 ("x/b", "Egress"): ("x/deny-b",)}
    assert denied_record(PACKET, context, 1_700_000_000.5) == {
        "time": "2023-11-14T22:13:20.500Z", "node": "n1", "direction": "ingress", "pod": "x/b",
        "srcIP": "10.244.1.10", "srcPod": "x/a", "srcPort": 40000, "dstIP": "10.244.1.11", "dstPod": "x/b",
        "port": 80, "protocol": "TCP", "isolatedBy": ["x/deny", "x/deny-b"]}
    outside = LoggedPacket(2, "pycni D E x/b ", 4, "10.244.1.11", "192.0.2.1", "UDP", 5353, 53, 1_700_000_001.0)
    record = denied_record(outside, context, 0)
    assert record is not None
    assert (record["time"], record["dstPod"], record["isolatedBy"]) == ("2023-11-14T22:13:21.000Z", None,
                                                                       ["x/deny-b"])
    assert denied_record(LoggedPacket(2, "something else", 4, "1.1.1.1", "2.2.2.2", "TCP"), context, 0) is None


def test_a_policy_the_state_no_longer_has_is_named_from_the_drop_comment() -> None:
    ruleset = compile_node(NodeView("n1", {"x": Namespace("x")}, PODS, [DENY]))
    context = context_of("n1", ruleset.chains, PODS, [])
    assert context.isolating[("x/b", "Ingress")] == ("x/deny",)


def test_the_writer_rotates_past_its_size(tmp_path: Path) -> None:
    path = tmp_path / "policy-denied.log"
    writer = DenyLogWriter(str(path), max_bytes=50)
    for n in range(5):
        writer.write({"n": n, "pad": "x" * 10})
    writer.close()
    rotated = [json.loads(line)["n"] for line in (tmp_path / "policy-denied.log.1").read_text().splitlines()]
    current = [json.loads(line)["n"] for line in path.read_text().splitlines()]
    assert (rotated, current) == ([3], [4])  # each line is 30 bytes: two do not fit in 50


class FakeSocket:
    def __init__(self) -> None:
        self.queue: list[LoggedPacket] = []
        self.closed = False
        self.ready = threading.Event()

    def receive(self, timeout: float | None = None) -> list[LoggedPacket]:
        if self.ready.wait(timeout or 0.01):
            self.ready.clear()
            packets, self.queue = self.queue, []
            return packets
        return []

    def close(self) -> None:
        self.closed = True


def test_the_agent_side_listener_writes_a_line_per_denied_packet(tmp_path: Path) -> None:
    kv = MemoryKV()
    agent = PolicyAgent(kv, "n1", lambda script: None, resync_seconds=3600)
    agent.start()
    fake = FakeSocket()
    log = DenyLog(agent, str(tmp_path), subscribe=lambda group: fake, clock=lambda: 1_700_000_000.0)  # type: ignore[arg-type,return-value]
    try:
        for pod, ip in (("a", "10.244.1.10"), ("b", "10.244.1.11")):
            agent.add_endpoint(Endpoint("x", pod, "n1", (ip,), f"c-{pod}", "eth0"))
        agent.store.apply([Namespace("x"), Pod("x", "b", labels_of({"pod": "b"})), DENY_B])
        deadline = time.monotonic() + 5
        while (agent.enforcer.committed is None or "deny-b" not in repr(agent.enforcer.committed.chains)) \
                and time.monotonic() < deadline:
            time.sleep(0.01)
        fake.queue = [PACKET]
        fake.ready.set()
        while log.written < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        log.stop()
        agent.stop()
    lines = (tmp_path / "policy-denied.log").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{
        "time": "2023-11-14T22:13:20.000Z", "node": "n1", "direction": "ingress", "pod": "x/b",
        "srcIP": "10.244.1.10", "srcPod": "x/a", "srcPort": 40000, "dstIP": "10.244.1.11", "dstPod": "x/b",
        "port": 80, "protocol": "TCP", "isolatedBy": ["x/deny-b"]}]
    assert fake.closed and agent.on_sync == []
