"""The lab's ToR config (golden file, parsed by bird when installed) and ``birdc`` aimed at the right socket."""

from __future__ import annotations

import os
import shutil
import subprocess
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from pycni.cluster.lab_bgp import birdc_command, lab_settings, render_tor_config
from pycni.cluster.lab_state import LabState, NodeState

DATA = Path(__file__).resolve().parents[2] / "data" / "bgp"


def test_tor_config() -> None:
    text = render_tor_config(IPv4Address("192.168.77.1"), IPv4Network("10.244.0.0/16"), "/run/pycni-lab/x/tor/bird.log")
    if os.environ.get("PYCNI_UPDATE_GOLDEN") == "1":
        (DATA / "lab_tor.conf").write_text(text)
    assert text == (DATA / "lab_tor.conf").read_text()


@pytest.mark.skipif(shutil.which("bird") is None, reason="bird2 is not installed (Debian: bird2)")
def test_bird_parses_the_tor_config() -> None:
    check = subprocess.run(["bird", "-p", "-c", str(DATA / "lab_tor.conf")], capture_output=True, text=True,
                           check=False)
    assert check.returncode == 0, check.stderr


def test_lab_settings() -> None:
    assert lab_settings(IPv4Address("192.168.77.1")).to_wire() == {
        "ASN": 64512, "Mesh": True, "Peers": [{"IP": "192.168.77.1", "ASN": 65000}]}
    assert lab_settings(IPv4Address("192.168.77.1"), ["n1"]).to_wire()["RouteReflectors"] == ["n1"]


def test_birdc_is_aimed_at_the_namespaces_bird(tmp_path: Path) -> None:
    state = LabState(id="plx", root=str(tmp_path), backend="bgp", network="10.244.0.0/16")
    state.nodes["n1"] = NodeState(name="n1", index=1, netns="plx-n1", ip="192.168.77.11")
    assert birdc_command(state, "tor", ["birdc", "show", "route"]) == [
        "birdc", "-s", f"{tmp_path}/plx/tor/bird.ctl", "show", "route"]
    assert birdc_command(state, "n1", ["birdc", "show", "protocols"]) == [
        "birdc", "-s", f"{tmp_path}/plx/nodes/n1/run/bird/bird.ctl", "show", "protocols"]
    assert birdc_command(state, "n1", ["birdc", "-s", "/x.ctl", "show"]) == ["birdc", "-s", "/x.ctl", "show"]
    assert birdc_command(state, "n1", ["ip", "route"]) == ["ip", "route"]
