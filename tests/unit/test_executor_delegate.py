"""In-process IPAM delegation: a pycni shim on CNI_PATH is called in-process, anything else exec'd, same results."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pycni import skel
from pycni.cli.install import cmd_install
from pycni.ipam import delegate
from pycni.spec.errors import CniError, InvalidConfig

REPO_ROOT = Path(__file__).resolve().parents[2]


def make_args(bin_dir: Path, config: dict[str, Any], container_id: str = "ctr1") -> skel.CmdArgs:
    data = json.dumps(config).encode()
    environ = {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": "/run/netns/absent",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": str(bin_dir),
        "PATH": "/usr/bin:/bin",
    }
    return skel.CmdArgs(command="ADD", container_id=container_id, netns="/run/netns/absent", ifname="eth0",
                        path=(str(bin_dir),), stdin_data=data, config=config, environ=environ)


def config(tmp_path: Path, **ipam: Any) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": "delegnet",
        "type": "bridge",
        "ipam": {"type": "host-local", "subnet": "10.77.0.0/24", "dataDir": str(tmp_path / "ipam"), **ipam},
    }


@pytest.fixture
def shim_dir(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "shims"
    cmd_install(argparse.Namespace(bin_dir=str(bin_dir), plugins=["host-local"], force=False), {})
    return bin_dir


@pytest.fixture
def exec_dir(tmp_path: Path) -> Path:
    """host-local as a foreign executable (a shell wrapper around pycni's plugin): must be exec'd."""
    bin_dir = tmp_path / "wrapped"
    bin_dir.mkdir()
    wrapper = bin_dir / "host-local"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{REPO_ROOT}" exec "{sys.executable}" -c '
                       '"from pycni.plugins import run; run(\'host-local\')"\n')
    wrapper.chmod(0o755)
    return bin_dir


def no_processes(*args: object, **kwargs: object) -> None:
    raise AssertionError("the delegate was exec'd, not called in-process")


def test_pycni_shim_is_called_in_process(tmp_path: Path, shim_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subprocess, "Popen", no_processes)
    args = make_args(shim_dir, config(tmp_path))

    result = delegate.ipam_add(args)

    assert [str(ip.address) for ip in result.ips] == ["10.77.0.2/24"]
    assert (tmp_path / "ipam" / "delegnet" / "10.77.0.2").read_text().startswith("ctr1")
    delegate.ipam_del(args)
    assert not (tmp_path / "ipam" / "delegnet" / "10.77.0.2").exists()


def test_in_process_and_exec_give_the_same_results(tmp_path: Path, shim_dir: Path, exec_dir: Path) -> None:
    first = delegate.ipam_add(make_args(shim_dir, config(tmp_path), "ctr1"))
    second = delegate.ipam_add(make_args(exec_dir, config(tmp_path), "ctr2"))
    a, b = first.to_wire("1.0.0"), second.to_wire("1.0.0")
    assert a["ips"][0]["address"] == "10.77.0.2/24" and b["ips"][0]["address"] == "10.77.0.3/24"
    a["ips"][0]["address"] = b["ips"][0]["address"] = "x"
    assert a == b


def test_in_process_and_exec_fail_alike(tmp_path: Path, shim_dir: Path, exec_dir: Path) -> None:
    bad = config(tmp_path, subnet="10.77.0.0/33")
    errors: list[CniError] = []
    for bin_dir in (shim_dir, exec_dir):
        with pytest.raises(CniError) as caught:
            delegate.ipam_add(make_args(bin_dir, bad))
        errors.append(caught.value)
    assert isinstance(errors[0], InvalidConfig)
    assert [(type(e), e.code, e.msg, e.details) for e in errors[:1]] == [
        (type(e), e.code, e.msg, e.details) for e in errors[1:]
    ]


def test_missing_delegate_is_the_runtime_error(tmp_path: Path) -> None:
    from pycni.runtime.invoke import PluginNotFound

    with pytest.raises(PluginNotFound, match='failed to find plugin "host-local"'):
        delegate.ipam_add(make_args(tmp_path / "empty", config(tmp_path)))
    with pytest.raises(InvalidConfig, match="invalid plugin name"):
        delegate.delegate("../host-local", "ADD", make_args(tmp_path, config(tmp_path)))


def test_finding_a_shim_does_not_import_the_runtime_library(tmp_path: Path, shim_dir: Path) -> None:
    code = (
        "import json, sys\n"
        "from pycni import skel\n"
        "from pycni.ipam import delegate\n"
        f"config = json.loads({json.dumps(json.dumps(config(tmp_path)))})\n"
        "env = dict(CNI_COMMAND='ADD', CNI_CONTAINERID='c', CNI_NETNS='/x', CNI_IFNAME='eth0', "
        f"CNI_PATH={str(shim_dir)!r})\n"
        "args = skel.CmdArgs(command='ADD', container_id='c', netns='/x', ifname='eth0', "
        f"path=({str(shim_dir)!r},), stdin_data=json.dumps(config).encode(), config=config, environ=env)\n"
        "delegate.ipam_add(args)\n"
        "print(sorted(m for m in sys.modules if m.startswith(('pycni.runtime', 'subprocess'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
