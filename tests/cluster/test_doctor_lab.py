"""Every fault ``pycni lab break`` makes, one test each: break it, ``pycni doctor`` names it and nothing
unrelated fails, heal it, doctor is clean again.

One lab (vxlan, 2 nodes, one pod each) serves the module; faults are made on n1 and healed in ``finally``.
Doctor runs as ``pycni lab doctor`` runs it (pycni.cluster.lab_faults.doctor_command); the data-path
faults run it with ``--probe`` (pings to the peer) as the lab's default does, the others without, to keep
the module short. A fault the agent would repair is made with the agent stopped: doctor must then name
``agent-down`` before the fault's own check. The module's teardown leaves two faults active and proves
``lab down`` undoes them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pycni.cluster.lab import Lab
from pycni.cluster.lab_faults import FAULTS, break_fault, doctor_command, heal_faults
from tests.cluster.conftest import _missing, build_lab, leftovers

NODE = "n1"
# Faults on the data path: doctor's probes (ping the peer's gateway, don't-fragment at pod MTU - 28) run too.
PROBED = {"peer-state", "vtep-mac", "node-ip", "mtu", "vxlan-port", "forward-drop"}
# Checks that read host-wide state other tests on this machine change (namespaces in /run/netns, the
# kernel log): a warning from them after a heal is not this lab's.
HOST_WIDE = {"netns-leak", "csum-offload", "conntrack"}
Checks = dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if _missing() is not None:
        pytest.skip(_missing() or "")
    lab = build_lab(tmp_path_factory.mktemp("doctor-lab"), "vxlan", nodes=2, pods_per_node=1)
    leaked = ""
    try:
        yield lab
        # lab down undoes faults left active: a namespace a fault made, a stopped agent.
        break_fault(lab, NODE, "netns-leak")
        break_fault(lab, NODE, "ip-forward")
        leaked = lab.state.faults[0].undo["netns"]
        assert os.path.exists(f"/run/netns/{leaked}")
    finally:
        lab_id = lab.state.id
        lab.down()
    assert not os.path.exists(f"/run/netns/{leaked}")
    assert leftovers(lab_id) == []


def doctor(lab: Lab, *flags: str) -> tuple[int, list[dict[str, Any]]]:
    proc = subprocess.run(doctor_command(lab.state, NODE, ["--json", *flags]), capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode in (0, 1), f"doctor could not run ({proc.returncode}): {proc.stderr}"
    document = json.loads(proc.stdout)
    assert document["node"] == NODE
    return proc.returncode, document["checks"]


def with_status(checks: list[dict[str, Any]], *statuses: str) -> Checks:
    return {c["id"]: c for c in checks if c["status"] in statuses}


def shown(checks: Checks) -> str:
    return "\n".join(f"{i}: {c['status']} {c['summary']} {c['evidence']}" for i, c in checks.items())


@pytest.mark.parametrize("name", list(FAULTS))
def test_doctor_names_the_fault_and_is_clean_after_heal(lab: Lab, name: str) -> None:
    fault = FAULTS[name]
    flags = ["--probe"] if name in PROBED else []
    break_fault(lab, NODE, name)
    undo = lab.state.faults[-1].undo
    try:
        code, checks = doctor(lab, *flags)
    finally:
        heal_faults(lab, NODE)
    problems = with_status(checks, "fail", "warn")
    assert fault.check in problems, f"doctor did not name {name} ({fault.check}); it found:\n{shown(problems)}"
    allowed = {fault.check, *fault.consequences} | ({"agent-down", "synthetic-pod"} if fault.stop_agent else set())
    unrelated = {i: c for i, c in with_status(checks, "fail").items() if i not in allowed}
    assert unrelated == {}, f"{name}: unrelated checks fail:\n{shown(unrelated)}"
    assert code == (1 if with_status(checks, "fail") else 0)
    if fault.stop_agent:  # the root cause first: the agent that would have repaired it is down
        order = [c["id"] for c in checks]
        assert problems["agent-down"]["status"] == "fail"
        assert fault.check == "agent-down" or order.index("agent-down") < order.index(fault.check)
    if name == "netns-leak":
        assert f"/run/netns/{undo['netns']}" in problems["netns-leak"]["evidence"]

    code, checks = doctor(lab, *flags)
    left = {i: c for i, c in with_status(checks, "fail", "warn").items() if i not in HOST_WIDE}
    assert left == {} and code == 0, f"after healing {name}:\n{shown(left)}"
    assert lab.state.faults == []


def test_lab_cli_breaks_names_and_heals(lab: Lab) -> None:
    """pycni lab faults / break / doctor / heal, as a user types them: doctor's exit code is relayed."""

    def lab_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pycni", "lab", "--root", lab.state.root, "--lab",
                               lab.state.id, *args], capture_output=True, text=True, timeout=120, check=False)

    broke = lab_cli("break", NODE, "ipam-leak")
    assert broke.returncode == 0, broke.stderr
    assert "ipam-leak" in broke.stdout
    try:
        assert "ACTIVE on n1" in next(line for line in lab_cli("faults").stdout.splitlines()
                                      if line.startswith("ipam-leak "))
        assert lab_cli("break", NODE, "ipam-leak").returncode == 1  # already active
        assert lab_cli("break", NODE, "no-such-fault").returncode == 1
        found = lab_cli("doctor", NODE, "--no-probe")
        assert found.returncode == 1, found.stdout + found.stderr
        assert any(line.startswith("✖ ipam-leak") for line in found.stdout.splitlines()), found.stdout
        ignored = lab_cli("doctor", NODE, "--no-probe", "--ignore", "ipam-leak")
        assert ignored.returncode == 0, ignored.stdout
    finally:
        healed = lab_cli("heal", NODE)
    assert healed.returncode == 0 and "ipam-leak" in healed.stdout, healed.stderr
    assert json.loads(Path(lab.state.path).read_text())["faults"] == []
