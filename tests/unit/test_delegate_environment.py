"""An exec'd IPAM delegate gets its caller's environment, exactly, and none of the calling process's own.

In-process that is the same thing; in the executor the caller is the
runtime behind the shim, so this is what makes a Go IPAM binary run there
see the runtime's PATH and CNI_PATH (issue 16, item 5).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from pycni import skel
from pycni.ipam import delegate
from pycni.runtime.invoke import RawExec

ENV_DUMP_IPAM = """#!{python} -S
# Writes its environment to ipam.envFile, then answers ADD with one address.
import json, os, sys
conf = json.load(sys.stdin)
with open(conf["ipam"]["envFile"], "w") as out:
    json.dump(dict(os.environ), out)
print(json.dumps({{"cniVersion": "1.0.0", "ips": [{{"address": "10.78.0.2/24"}}]}}))
"""


@pytest.fixture
def env_dump_dir(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    plugin = bin_dir / "env-dump"
    plugin.write_text(ENV_DUMP_IPAM.format(python=sys.executable))
    plugin.chmod(0o755)
    return bin_dir


def make_args(bin_dir: Path, env_file: Path, environ: dict[str, str]) -> skel.CmdArgs:
    config: dict[str, Any] = {"cniVersion": "1.0.0", "name": "envnet", "type": "bridge",
                              "ipam": {"type": "env-dump", "envFile": str(env_file)}}
    return skel.CmdArgs(command="ADD", container_id="c1", netns="/run/netns/absent", ifname="eth0",
                        path=(str(bin_dir),), stdin_data=json.dumps(config).encode(), config=config,
                        environ=environ)


def test_the_delegate_sees_exactly_the_callers_environment(
    tmp_path: Path, env_dump_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYCNI_TEST_ONLY_IN_THIS_PROCESS", "daemon")
    monkeypatch.setenv("PATH", "/daemon/bin:/usr/bin:/bin")
    caller = {
        "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/absent", "CNI_IFNAME": "eth0",
        "CNI_PATH": str(env_dump_dir), "PATH": "/caller/bin:/usr/bin:/bin", "CALLER_ONLY": "runtime",
        "LANG": "C.UTF-8",  # else Python coerces the C locale and adds LC_CTYPE to what it dumps
    }
    env_file = tmp_path / "env.json"

    result = delegate.ipam_add(make_args(env_dump_dir, env_file, caller))

    assert [str(ip.address) for ip in result.ips] == ["10.78.0.2/24"]
    assert json.loads(env_file.read_text()) == caller


def test_del_changes_only_cni_command(tmp_path: Path, env_dump_dir: Path) -> None:
    caller = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0", "CNI_PATH": str(env_dump_dir),
              "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    env_file = tmp_path / "env.json"

    delegate.ipam_del(make_args(env_dump_dir, env_file, caller))

    assert json.loads(env_file.read_text()) == {**caller, "CNI_COMMAND": "DEL"}


def test_a_runtime_exec_still_lays_cni_variables_over_its_own_environment(
    tmp_path: Path, env_dump_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYCNI_TEST_INHERITED", "yes")
    env_file = tmp_path / "env.json"
    stdin = json.dumps({"cniVersion": "1.0.0", "name": "n", "ipam": {"envFile": str(env_file)}}).encode()

    RawExec().exec_plugin(str(env_dump_dir / "env-dump"), stdin, {"CNI_COMMAND": "ADD"}, timeout=30)

    seen = json.loads(env_file.read_text())
    assert seen["PYCNI_TEST_INHERITED"] == "yes" and seen["CNI_COMMAND"] == "ADD"
