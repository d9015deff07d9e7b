"""The upstream NetworkPolicy e2e truth tables (tests/data/netpol) against the evaluator.

Every case, every step, every port and protocol it probes: the evaluator's
reachability over the 9 model pods must equal the table, diagonal included.
"""

from __future__ import annotations

from functools import cache

import pytest

from pycni.policy.evaluate import evaluate
from pycni.policy.reachability import reachability
from tests.support.netpol_cases import (
    Case,
    case_paths,
    format_matrix,
    load_case,
    load_cluster,
    policy_from_manifest,
    replay,
    to_snapshot,
)

CLUSTER = load_cluster()
PATHS = case_paths()


@cache
def _case(name: str) -> Case:
    return load_case(next(path for path in PATHS if path.stem == name), CLUSTER)


def test_the_data_holds_the_upstream_suite_and_pycni_corners() -> None:
    cases = [_case(path.stem) for path in PATHS]
    upstream = [case for case in cases if case.upstream]
    assert len(upstream) >= 40
    assert len(cases) - len(upstream) >= 10
    assert len({case.upstream for case in upstream}) == len(upstream), "one file per upstream test"


@pytest.mark.parametrize("name", [path.stem for path in PATHS])
def test_every_step_probes_every_protocol(name: str) -> None:
    for step in _case(name).steps:
        assert {probe.protocol for probe in step.probes} == set(CLUSTER.protocols)
        seen = [(probe.port, probe.protocol) for probe in step.probes]
        assert len(seen) == len(set(seen)), "a port and protocol probed twice in one step"


@pytest.mark.parametrize("name", [path.stem for path in PATHS])
def test_evaluator_matches_truth_table(name: str) -> None:
    case = _case(name)
    pods = CLUSTER.pod_keys
    for index, step, state in replay(case, CLUSTER):
        snapshot = to_snapshot(CLUSTER, state)
        for probe in step.probes:
            got = reachability(snapshot, probe.port, probe.protocol)
            if got != probe.expected:
                pytest.fail(
                    f"{case.name} step {index} {probe.protocol}/{probe.port}:\n"
                    f"expected\n{format_matrix(probe.expected, pods)}\n"
                    f"evaluator\n{format_matrix(got, pods)}"
                )


@pytest.mark.parametrize("name", [path.stem for path in PATHS])
def test_detailed_verdicts_agree_with_the_table(name: str) -> None:
    """evaluate() (what explain prints) against the same tables, first probe of each step."""
    case = _case(name)
    for index, step, state in replay(case, CLUSTER):
        snapshot = to_snapshot(CLUSTER, state)
        probe = step.probes[0]
        for (src, dst), expected in probe.expected.items():
            verdict = evaluate(snapshot, src, dst, probe.port, probe.protocol)  # type: ignore[arg-type]
            assert verdict.allowed is expected, f"{case.name} step {index}: {src} -> {dst}"
            for side in (verdict.egress, verdict.ingress):
                if side.tier is not None:  # an admin tier decided: its action is the verdict
                    assert side.allowed == (side.tier.action == "Allow") and not side.allowed_by
                else:
                    assert (side.status == "allowed") == bool(side.allowed_by)


def test_the_loaders_stand_in_converter_agrees_with_validation() -> None:
    """The tables go through pycni.policy.validate; the loader's stand-in must read them alike."""
    validate = pytest.importorskip("pycni.policy.validate")
    for path in PATHS:
        for step in _case(path.stem).steps:
            for manifest in step.apply:
                if manifest["kind"] == "NetworkPolicy":  # the stand-in reads NetworkPolicies only
                    assert policy_from_manifest(manifest) == validate.to_model(manifest), path.name
