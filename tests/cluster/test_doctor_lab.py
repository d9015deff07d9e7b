"""Every fault ``pycni lab break`` makes, one test each: break it, ``pycni doctor`` names it and nothing
unrelated fails, heal it, doctor is clean again.

One lab (vxlan, 2 nodes, one pod each) serves the module; faults are made on n1 and healed in ``finally``.
Doctor runs as ``pycni lab doctor`` runs it (pycni.cluster.lab_faults.doctor_command); the data-path
faults run it with ``--probe`` (pings to the peer) as the lab's default does, the others without, to keep
the module short. A fault the agent would repair is made with the agent stopped: doctor must then name
``agent-down`` before the fault's own check. The module's teardown leaves two faults active and proves
``lab down`` undoes them. Host-wide checks (other tests churn namespaces meanwhile) are ignored unless
the fault is about them (tests.doctor.faults).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycni.cluster.lab import Lab
from pycni.cluster.lab_faults import FAULTS, break_fault
from tests.cluster.conftest import _missing, build_lab, leftovers
from tests.doctor.faults import assert_named_then_clean

NODE = "n1"
BACKEND = "vxlan"  # tests/doctor/test_doctor_bgp.py breaks a bgp lab's nodes


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if _missing() is not None:
        pytest.skip(_missing() or "")
    lab = build_lab(tmp_path_factory.mktemp("doctor-lab"), BACKEND, nodes=2, pods_per_node=1)
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


@pytest.mark.parametrize("name", [n for n, f in FAULTS.items() if not f.backends or BACKEND in f.backends])
def test_doctor_names_the_fault_and_is_clean_after_heal(lab: Lab, name: str) -> None:
    assert_named_then_clean(lab, NODE, name)


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
