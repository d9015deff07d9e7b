"""One doctor run: the synthetic pod runs only when no root cause it depends on fails; --ignore lets it run."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pycni.doctor import diagnose as diagnose_module
from pycni.doctor.snapshot import Options, Snapshot, SyntheticResult
from tests.unit.doctor.snapshots import OPTIONS, healthy


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    state: dict[str, object] = {"snapshot": replace(healthy(), synthetic=None), "synthetic_runs": 0}

    def fake_collect(options: Options, **_: object) -> Snapshot:
        snap = state["snapshot"]
        assert isinstance(snap, Snapshot)
        return snap

    def fake_synthetic(options: Options, conf_name: str) -> SyntheticResult:
        state["synthetic_runs"] = int(str(state["synthetic_runs"])) + 1
        assert conf_name == "00-pycni-cluster.conflist"
        return SyntheticResult(True, "del", None, 0.05)

    monkeypatch.setattr(diagnose_module, "collect", fake_collect)
    monkeypatch.setattr("pycni.doctor.synthetic.run_synthetic", fake_synthetic)
    return state


def test_a_healthy_node_gets_its_synthetic_pod(world: dict[str, object]) -> None:
    result = diagnose_module.diagnose(OPTIONS)
    assert world["synthetic_runs"] == 1
    assert [r.status for r in result.results] == ["pass"] * len(result.results)


def test_no_synthetic_pod_while_the_agent_is_down(world: dict[str, object]) -> None:
    snap = healthy()
    assert snap.agent is not None
    world["snapshot"] = replace(snap, synthetic=None, agent=replace(snap.agent, pid_alive=False))
    result = diagnose_module.diagnose(OPTIONS)
    assert world["synthetic_runs"] == 0
    synthetic = next(r for r in result.results if r.id == "synthetic-pod")
    assert (synthetic.status, synthetic.summary) == ("skip", "not run: see agent-down")


def test_an_ignored_root_does_not_hold_the_synthetic_pod_back(world: dict[str, object]) -> None:
    snap = healthy()
    assert snap.agent is not None
    world["snapshot"] = replace(snap, synthetic=None, agent=replace(snap.agent, pid_alive=False))
    result = diagnose_module.diagnose(OPTIONS, ignore={"agent-down"})
    assert world["synthetic_runs"] == 1
    agent = next(r for r in result.results if r.id == "agent-down")
    assert agent.status == "warn" and agent.summary.endswith("(ignored)")


def test_no_synthetic_pod_when_asked(world: dict[str, object]) -> None:
    result = diagnose_module.diagnose(OPTIONS, synthetic=False)
    assert world["synthetic_runs"] == 0
    assert next(r for r in result.results if r.id == "synthetic-pod").summary == "not run (--no-synthetic)"
