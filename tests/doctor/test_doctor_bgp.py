"""``pycni doctor`` on a bgp lab node (bird2): a healthy node is clean, and the faults that make sense on bgp
are each named and healed.

One two-node bgp lab (mesh, plus the lab's ToR as a global peer; one pod per node) serves the module. The
healthy node passes bird, bgp-session, bgp-export and peer-state with bird's routes (``proto bird``); then,
per fault: ``bird`` (the agent stopped, bird killed: agent-down first, then bird), ``peer-state`` (one
session disabled in bird), ``node-ip``, ``mtu``, ``ip-forward``, as tests/cluster/test_doctor_lab.py does
for vxlan (tests.doctor.faults). Needs root, etcd, ping, nft and bird2.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from pycni.cluster.lab import Lab
from tests.cluster.conftest import leftovers
from tests.doctor.conftest import _missing
from tests.doctor.faults import HOST_WIDE, assert_named_then_clean, doctor, shown, with_status
from tests.support.prerequisites import skip_or_fail

NODE = "n1"
FAULTS_ON_BGP = ("bird", "peer-state", "node-ip", "mtu", "ip-forward")


def _bird_missing() -> str | None:
    return _missing() or (None if shutil.which("bird") else "needs bird (Debian: bird2)")


@pytest.fixture(autouse=True)
def _bird() -> None:
    reason = _bird_missing()
    if reason is None:
        return
    skip_or_fail(reason, f"bgp doctor test prerequisite missing: {reason}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if _bird_missing() is not None:
        pytest.skip(_bird_missing() or "")
    lab = Lab.up(2, "bgp", root=str(tmp_path_factory.mktemp("doctor-bgp")), wait=90)  # sessions: a loaded CI
    try:
        lab.add_pod("n1", "web")
        lab.add_pod("n2", "db")
    except BaseException:
        lab.down()
        raise
    yield lab
    lab_id = lab.state.id
    lab.down()
    assert leftovers(lab_id) == []


def test_a_healthy_bgp_node_is_clean_with_probes(lab: Lab) -> None:
    code, checks = doctor(lab, NODE, "--probe")
    problems = {i: c for i, c in with_status(checks, "fail", "warn").items() if i not in HOST_WIDE}
    assert (code, problems) == (0, {}), shown(problems)
    by_id = {c["id"]: c for c in checks}
    assert {by_id[i]["status"] for i in ("bird", "bgp-session", "bgp-export", "peer-state", "cidr-overlap")} == {
        "pass"}
    n2 = lab.state.nodes["n2"].ip
    assert f"Mesh_{n2.replace('.', '_')}: up Established" in by_id["bgp-session"]["evidence"]
    assert by_id["peer-state"]["summary"] == "routes for 1 peer(s) in place, 1 peer(s) answer pings"


@pytest.mark.parametrize("name", FAULTS_ON_BGP)
def test_doctor_names_the_fault_and_is_clean_after_heal(lab: Lab, name: str) -> None:
    assert_named_then_clean(lab, NODE, name)
