"""`pycni install` / `pycni uninstall`: shims in a bin dir, foreign files respected."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pycni.plugins import PLUGIN_MODULES

REPO_ROOT = Path(__file__).resolve().parents[2]


def pycni(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "pycni", *args], capture_output=True, text=True, env=env, timeout=60)


def test_install_writes_every_plugin_and_uninstall_removes_only_ours(tmp_path: Path) -> None:
    foreign = tmp_path / "vrf"
    foreign.write_text("#!/bin/sh\necho go\n")
    out = pycni("install", "--bin-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    for plugin_type in PLUGIN_MODULES:
        shim = tmp_path / plugin_type
        assert shim.is_file() and os.access(shim, os.X_OK), plugin_type
    assert f"installed {tmp_path / 'bridge'}" in out.stdout

    out = pycni("uninstall", "--bin-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vrf"]


def test_install_refuses_foreign_file_without_force(tmp_path: Path) -> None:
    go_bridge = tmp_path / "bridge"
    go_bridge.write_bytes(b"\x7fELF not ours")
    out = pycni("install", "--bin-dir", str(tmp_path), "bridge")
    assert out.returncode == 1
    assert "not installed by pycni" in out.stderr and "--force" in out.stderr
    assert go_bridge.read_bytes() == b"\x7fELF not ours"

    out = pycni("install", "--bin-dir", str(tmp_path), "--force", "bridge")
    assert out.returncode == 0, out.stderr
    assert f"replaced {go_bridge}" in out.stdout
    assert b"pycni-shim" in go_bridge.read_bytes()


def test_install_rejects_unknown_type(tmp_path: Path) -> None:
    out = pycni("install", "--bin-dir", str(tmp_path), "nosuch")
    assert out.returncode != 0 and "nosuch" in out.stderr


@pytest.mark.parametrize("plugin_type", ["host-local", "static"])
def test_installed_shim_answers_version_in_isolated_mode(tmp_path: Path, plugin_type: str) -> None:
    assert pycni("install", "--bin-dir", str(tmp_path), plugin_type).returncode == 0
    # A runtime's environment: no PYTHONPATH; the shim finds pycni on its own.
    env = {"PATH": "/usr/bin:/bin", "CNI_COMMAND": "VERSION"}
    out = subprocess.run([str(tmp_path / plugin_type)], input=b'{"cniVersion":"1.0.0"}', capture_output=True,
                         env=env, timeout=30)
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert "1.1.0" in answer["supportedVersions"] and "0.1.0" in answer["supportedVersions"]
