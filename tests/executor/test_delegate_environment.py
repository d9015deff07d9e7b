"""A delegate the executor execs sees the caller's environment, as a runtime exec gives it (issue 16, item 5).

The executor is started with a PATH and a variable of its own; a bridge
ADD and DEL through it delegate to an IPAM executable that records its
environment: what it records is the caller's, exactly, with only
CNI_COMMAND changed, and the same as on the in-process path.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.executor.running import RunningExecutor
from tests.executor.shims import NO_EXECUTOR, bridge_config, run_shim, shim_env
from tests.executor.test_serving import served_calls
from tests.support.cnilab import CniLab
from tests.support.netns import Netns
from tests.support.podman import GO_PLUGIN_DIR

ENV_DUMP_IPAM = """#!{python} -S
# Records its environment in <envDir>/<CNI_COMMAND>.<CNI_CONTAINERID>.json; ADD answers {address}.
import json, os, sys
conf = json.load(sys.stdin)
name = os.environ.get("CNI_COMMAND", "") + "." + os.environ.get("CNI_CONTAINERID", "")
with open(os.path.join(conf["ipam"]["envDir"], name + ".json"), "w") as out:
    json.dump(dict(os.environ), out)
if os.environ.get("CNI_COMMAND") == "ADD":
    print(json.dumps({{"cniVersion": "1.0.0", "ips": [{{"address": "{address}", "gateway": "{gateway}"}}]}}))
"""


def install_env_dump(lab: CniLab, host: int) -> dict[str, Any]:
    """``env-dump`` on the lab's CNI_PATH, and a bridge config that delegates to it."""
    prefix = lab.subnet4.rsplit(".", 1)[0]
    plugin = lab.bin_dir / "env-dump"
    plugin.write_text(ENV_DUMP_IPAM.format(python=sys.executable, address=f"{prefix}.{host}/24",
                                           gateway=lab.gateway4))
    plugin.chmod(0o755)
    env_dir = lab.root / "env-seen"
    env_dir.mkdir(exist_ok=True)
    return {**bridge_config(lab), "ipam": {"type": "env-dump", "envDir": str(env_dir)}}


def seen(conf: dict[str, Any], command: str, container_id: str) -> dict[str, str]:
    path = Path(conf["ipam"]["envDir"]) / f"{command}.{container_id}.json"
    result: dict[str, str] = json.loads(path.read_text())
    return result


def test_an_execd_delegate_sees_the_callers_path_and_cni_path_not_the_executors(
    lab: CniLab, make_netns: Callable[[], Netns], executor_factory: Callable[..., RunningExecutor],
    monkeypatch: pytest.MonkeyPatch
) -> None:
    # The daemon's own environment: a PATH and a variable the caller does not have.
    monkeypatch.setenv("PATH", f"/pycni-daemon-only/bin:{sys.prefix}/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    monkeypatch.setenv("PYCNI_TEST_DAEMON_ONLY", "executor")
    executor = executor_factory()
    monkeypatch.undo()
    lab.install_pycni("bridge")
    conf = install_env_dump(lab, host=50)
    caller_path = "/pycni-caller-only/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    via = shim_env(lab, "ADD", socket=str(executor.socket), container_id="envc", netns=make_netns().path,
                   PATH=caller_path, LANG="C.UTF-8", CALLER_ONLY="runtime")

    added = run_shim(lab, "bridge", via, conf)
    gone = run_shim(lab, "bridge", {**via, "CNI_COMMAND": "DEL"}, conf)

    assert added.returncode == 0, added.stdout + added.stderr
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert [e["exit_code"] for e in served_calls(executor, "ADD", "envc")] == [0]
    assert [e["exit_code"] for e in served_calls(executor, "DEL", "envc")] == [0]
    assert seen(conf, "ADD", "envc") == via
    assert seen(conf, "DEL", "envc") == {**via, "CNI_COMMAND": "DEL"}
    assert seen(conf, "ADD", "envc")["PATH"] == caller_path
    assert seen(conf, "ADD", "envc")["CNI_PATH"] == ":".join(lab.cni_path)


def test_the_in_process_path_gives_the_delegate_the_same_environment(
    lab: CniLab, make_netns: Callable[[], Netns]
) -> None:
    lab.install_pycni("bridge")
    conf = install_env_dump(lab, host=51)
    local = shim_env(lab, "ADD", socket=NO_EXECUTOR, container_id="envl", netns=make_netns().path,
                     PATH="/pycni-caller-only/bin:/usr/sbin:/usr/bin:/sbin:/bin", LANG="C.UTF-8")

    added = run_shim(lab, "bridge", local, conf)
    assert run_shim(lab, "bridge", {**local, "CNI_COMMAND": "DEL"}, conf).returncode == 0

    assert added.returncode == 0, added.stdout + added.stderr
    assert seen(conf, "ADD", "envl") == local


def test_the_go_host_local_as_the_delegate_of_a_bridge_the_executor_runs(
    lab: CniLab, make_netns: Callable[[], Netns], executor: RunningExecutor
) -> None:
    """The executor execs Debian's Go host-local (first on CNI_PATH) with the caller's environment."""
    lab.install_pycni("bridge")
    conf = bridge_config(lab)
    via = shim_env(lab, "ADD", socket=str(executor.socket), container_id="goipam", netns=make_netns().path,
                   CNI_PATH=f"{GO_PLUGIN_DIR}:{lab.bin_dir}")

    added = run_shim(lab, "bridge", via, conf)

    assert added.returncode == 0, added.stdout + added.stderr
    [address] = [ip["address"].split("/")[0] for ip in json.loads(added.stdout)["ips"]]
    assert lab.reserved_ips("exnet") == [address]
    reservation = (lab.ipam_dir / "exnet" / address).read_bytes()
    assert reservation == b"goipam\r\neth0"  # Go's file layout, written by Go's host-local
    gone = run_shim(lab, "bridge", {**via, "CNI_COMMAND": "DEL"}, conf)
    assert (gone.returncode, lab.reserved_ips("exnet")) == (0, [])
    assert [e["exit_code"] for e in served_calls(executor, "ADD", "goipam")] == [0]
