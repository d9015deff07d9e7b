"""The lab's state file and names (cluster/lab_state.py). Pure."""

from __future__ import annotations

from pathlib import Path

import pytest

from pycni.cluster.lab_state import LabState, NodeState, PodState, check_name, node_ip


def test_lab_state_round_trip_and_names(tmp_path: Path) -> None:
    state = LabState(id="pl0a0b0c", root=str(tmp_path), backend="vxlan")
    state.nodes["n1"] = NodeState(name="n1", index=1, netns="pl0a0b0c-n1", ip=str(node_ip(1)), agent_pid=42)
    state.pods["web"] = PodState(name="web", node="n1", netns=state.pod_netns("web"), ip="10.244.1.2")
    state.namespaces += ["pl0a0b0c-ul", "pl0a0b0c-n1"]
    state.save()
    loaded = LabState.load(str(tmp_path), "pl0a0b0c")
    assert loaded == state
    assert LabState.list_ids(str(tmp_path)) == ["pl0a0b0c"]
    assert loaded.netns_of("web") == "pl0a0b0c-p-web"
    assert loaded.netns_of("n1") == "pl0a0b0c-n1"
    assert loaded.netns_of("outside") == "pl0a0b0c-ext"
    assert str(node_ip(2)) == "192.168.77.12"
    with pytest.raises(KeyError):
        loaded.netns_of("nope")
    with pytest.raises(ValueError):
        check_name("Bad_Name", "pod")
