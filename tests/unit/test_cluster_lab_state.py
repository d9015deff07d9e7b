"""The lab's state file and names (cluster/lab_state.py). Pure."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from pycni.cluster.lab_state import FaultState, LabState, NodeState, PodState, check_name, node_ip


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


def test_active_faults_round_trip_and_old_state_files_load(tmp_path: Path) -> None:
    state = LabState(id="pl0a0b0d", root=str(tmp_path), backend="vxlan")
    state.faults.append(FaultState(node="n1", fault="ip-forward", undo={"sysctls": {"net.ipv4.ip_forward": "1"}},
                                   stopped_agent=True))
    state.save()
    assert LabState.load(str(tmp_path), "pl0a0b0d") == state
    data = json.loads(Path(state.path).read_text())
    del data["faults"]  # a state file written before lab faults existed
    Path(state.path).write_text(json.dumps(data))
    assert LabState.load(str(tmp_path), "pl0a0b0d").faults == []


def test_threads_adding_pods_and_saving_at_once_leave_a_whole_state_file(tmp_path: Path) -> None:
    state = LabState(id="pl0a0b0e", root=str(tmp_path), backend="vxlan")
    failures: list[BaseException] = []

    def add_and_save(worker: int) -> None:
        try:
            for i in range(60):
                name = f"w{worker}p{i}"
                state.pods[name] = PodState(name=name, node="n1", netns=state.pod_netns(name))
                state.save()
        except BaseException as exc:  # any thread's failure is the test's
            failures.append(exc)

    threads = [threading.Thread(target=add_and_save, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    state.save()
    assert len(LabState.load(str(tmp_path), "pl0a0b0e").pods) == 240
    assert [p.name for p in tmp_path.joinpath("pl0a0b0e").iterdir()] == ["state.json"]  # no temporary left
