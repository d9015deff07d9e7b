"""The agent's metrics (cluster/agent_metrics.py): counters and gauges rendered as Prometheus text."""

from __future__ import annotations

from pycni.cluster.agent_metrics import AgentMetrics


def test_metrics_render() -> None:
    metrics = AgentMetrics()
    metrics.inc("pycni_agent_kernel_changes_total", 3, action="added")
    metrics.set("pycni_agent_peers", 2)
    text = metrics.render()
    assert 'pycni_agent_kernel_changes_total{action="added"} 3' in text
    assert "pycni_agent_peers 2" in text
    assert "# TYPE pycni_agent_lease_valid gauge" in text and "pycni_agent_lease_valid 0" in text
