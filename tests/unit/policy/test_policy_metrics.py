"""The policy agent's metrics: packets per policy from a (fake) nft JSON listing, syncs, latency, plugin requests."""

from __future__ import annotations

import re
import time
from typing import Any

from pycni.cluster.agent_metrics import AgentMetrics
from pycni.policy.agent import PolicyAgent
from pycni.policy.compile import NodeView, compile_node
from pycni.policy.endpoints import Endpoint
from pycni.policy.metrics import packet_counts, register
from pycni.policy.model import (
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Pod,
    PolicyPeer,
    PolicyPort,
    PolicyRule,
    labels_of,
)
from pycni.testing.kv import MemoryKV

DENY = NetworkPolicy("x", "deny", LabelSelector(), frozenset({"Ingress"}))
ALLOW = NetworkPolicy("x", "allow", LabelSelector(labels_of({"pod": "b"})), frozenset({"Ingress"}), ingress=(
    PolicyRule((PolicyPort("TCP", 80),), (PolicyPeer(LabelSelector(labels_of({"pod": "a"}))),)),))
PODS = [Pod("x", "a", labels_of({"pod": "a"}), (), ("10.244.1.10",), "n1"),
        Pod("x", "b", labels_of({"pod": "b"}), (), ("10.244.1.11",), "n1")]


def listing(packets: int, policies: list[NetworkPolicy]) -> list[dict[str, Any]]:
    """What ``nft -j list table`` gives for the compiled table, every counter at ``packets``."""
    ruleset = compile_node(NodeView("n1", {"x": Namespace("x")}, PODS, policies))
    items: list[dict[str, Any]] = [{"metainfo": {"json_schema_version": 1}}, {"table": {"name": "pycni_policy"}}]
    for chain in ruleset.chains.values():
        for rule in chain.rules:
            comment = re.search(r'comment "([^"]*)"', rule)
            expr: list[dict[str, Any]] = []
            if rule.startswith("jump "):
                expr.append({"jump": {"target": rule.split()[1]}})
            if "counter" in rule:
                expr.append({"counter": {"packets": packets, "bytes": packets * 60}})
            if " accept" in rule:
                expr.append({"accept": None})
            if " drop" in rule:
                expr.append({"drop": None})
            body: dict[str, Any] = {"family": "inet", "table": "pycni_policy", "chain": chain.name, "expr": expr}
            if comment:
                body["comment"] = comment.group(1)
            items.append({"rule": body})
    return items


def test_packets_per_policy_direction_and_verdict() -> None:
    counts = packet_counts(listing(3, [DENY, ALLOW]), ["x/deny", "x/allow"])
    assert counts == {
        ("x", "allow", "ingress", "accept"): 3,  # one accept rule (pod=a, tcp/80)
        ("x", "deny", "ingress", "drop"): 3,  # x/a: isolated by x/deny alone
        ("x", "allow,deny", "ingress", "drop"): 3,  # x/b: by both
    }


def test_policies_the_agent_no_longer_knows_are_named_from_comments() -> None:
    assert packet_counts(listing(2, [DENY, ALLOW]), []) == {
        ("x", "allow", "ingress", "accept"): 2,
        ("x", "deny", "ingress", "drop"): 2,
        ("x", "allow,deny", "ingress", "drop"): 2,
    }


def test_render_reads_the_table_only_when_scraped_and_observes_syncs() -> None:
    kv = MemoryKV()
    agent = PolicyAgent(kv, "n1", lambda script: None, resync_seconds=3600)
    reads = []

    def read_table() -> list[dict[str, Any]]:
        reads.append(1)
        return listing(5, [DENY])

    metrics = AgentMetrics()
    collector = register(metrics, agent, read_table)
    agent.start()
    try:
        agent.handle({"op": "status"})
        agent.add_endpoint(Endpoint("x", "a", "n1", ("10.244.1.10",), "c1", "eth0"))
        agent.store.apply([Namespace("x"), DENY])  # a watch event: the sync thread enforces it
        deadline = time.monotonic() + 5
        while "pycni_policy_apply_to_enforced_seconds_count 1" not in metrics.render() \
                and time.monotonic() < deadline:
            time.sleep(0.01)
        reads.clear()
        text = metrics.render()
    finally:
        agent.stop()
    assert reads == [1]  # the kernel is listed only when scraped
    assert 'pycni_policy_packets_total{namespace="x",policy="deny",direction="ingress",verdict="drop"} 10' in text
    assert 'pycni_policy_syncs_total{kind="full"} 1' in text
    assert 'pycni_policy_sync_seconds_count{kind="full"} 1' in text
    assert 'pycni_policy_plugin_requests_total{op="status"} 1' in text
    assert "pycni_policy_sync_failures_total 0" in text
    assert "pycni_policy_apply_to_enforced_seconds_count 1" in text
    assert 'pycni_policy_apply_to_enforced_seconds_bucket{le="+Inf"} 1' in text
    for phase in ("read", "decode", "compile", "kernel"):  # where the cold start went
        assert f'pycni_policy_start_seconds{{phase="{phase}"}} ' in text
    assert text.startswith("# HELP pycni_agent_")  # after the node agent's own series
    assert collector.read_errors == 0


def test_a_failed_listing_is_counted_and_the_rest_still_renders() -> None:
    agent = PolicyAgent(MemoryKV(), "n1", lambda script: None)

    def broken() -> list[dict[str, Any]]:
        raise OSError("nft: no table")

    metrics = AgentMetrics()
    register(metrics, agent, broken)
    text = metrics.render()
    assert "pycni_policy_counter_read_errors_total 1" in text
    assert "# TYPE pycni_policy_packets_total counter" in text
