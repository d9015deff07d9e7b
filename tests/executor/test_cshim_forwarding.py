"""The compiled shim against a real executor: the same answers as the Python shim, and the same fallbacks.

Each test installs both kinds side by side: C shims in the lab's bin dir
(first on CNI_PATH), Python shims in a directory of their own.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pycni.cli.install import cmd_install
from pycni.executor import cshim
from pycni.shimfile import import_roots, patch_config
from tests.executor import test_robustness
from tests.executor.running import RunningExecutor
from tests.executor.shims import NO_EXECUTOR, bridge_config, install_slow_ipam, normalized, shim_env
from tests.support.cnilab import CniLab
from tests.support.host import ip_json, link_exists
from tests.support.netns import Netns

pytestmark = pytest.mark.skipif(cshim.build_shim_binary() is None, reason=f"no C shim: {cshim.build_error()}")

KINDS = ("c", "python")


def install_kind(bin_dir: Path, kind: str, *plugin_types: str, **extra: Any) -> None:
    cmd_install(argparse.Namespace(bin_dir=str(bin_dir), plugins=list(plugin_types), force=True, shim=kind,
                                   **extra), {})


@pytest.fixture
def both(lab: CniLab) -> dict[str, Path]:
    """The bin dir of each kind, bridge and host-local installed in both."""
    dirs = {"c": lab.bin_dir, "python": lab.root / "python-shims"}
    for kind, bin_dir in dirs.items():
        install_kind(bin_dir, kind, "bridge", "host-local")
    assert (lab.bin_dir / "bridge").read_bytes().startswith(b"\x7fELF")
    return dirs


def run_kind(dirs: dict[str, Path], kind: str, plugin_type: str, env: dict[str, str], stdin: bytes | dict[str, Any],
             *, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[bytes]:
    data = stdin if isinstance(stdin, bytes) else json.dumps(stdin).encode()
    return subprocess.run([*prefix, str(dirs[kind] / plugin_type)], input=data, env=env, capture_output=True,
                          timeout=120, check=False)


def calls(executor: RunningExecutor, command: str | None = None) -> list[dict[str, Any]]:
    return [e for e in executor.events("call") if command is None or e["command"] == command]


def wait_calls(executor: RunningExecutor, count: int) -> None:
    deadline = time.monotonic() + 10  # the daemon logs a call just after answering it
    while len(calls(executor)) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(calls(executor)) == count, executor.events()[-4:]


CASES: dict[str, Callable[[CniLab, Netns], tuple[str, dict[str, str], bytes | dict[str, Any]]]] = {
    "version": lambda lab, ns: ("VERSION", {}, b'{"cniVersion":"0.4.0"}'),
    "version without stdin": lambda lab, ns: ("VERSION", {}, b""),
    "bad json": lambda lab, ns: ("ADD", {"CNI_CONTAINERID": "c1", "CNI_NETNS": ns.path}, b"{not json"),
    "missing env": lambda lab, ns: ("ADD", {}, bridge_config(lab)),
    "invalid config": lambda lab, ns: ("ADD", {"CNI_CONTAINERID": "c1", "CNI_NETNS": ns.path},
                                       bridge_config(lab, mtu="big")),
    "del of nothing": lambda lab, ns: ("DEL", {"CNI_CONTAINERID": "c1", "CNI_NETNS": ns.path}, bridge_config(lab)),
    "status": lambda lab, ns: ("STATUS", {}, bridge_config(lab, version="1.1.0")),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_both_shims_get_the_same_bytes_from_the_executor(lab: CniLab, both: dict[str, Path],
                                                         make_netns: Callable[[], Netns], executor: RunningExecutor,
                                                         case: str) -> None:
    command, extra, stdin = CASES[case](lab, make_netns())
    env = shim_env(lab, command, socket=str(executor.socket), **extra)

    c, py = (run_kind(both, kind, "bridge", env, stdin) for kind in KINDS)

    assert (c.returncode, c.stdout, c.stderr) == (py.returncode, py.stdout, py.stderr)
    wait_calls(executor, 2)  # both were served by the executor
    local = run_kind(both, "c", "bridge", {**env, "PYCNI_EXECUTOR_SOCKET": NO_EXECUTOR}, stdin)
    assert (local.returncode, local.stdout, local.stderr) == (c.returncode, c.stdout, c.stderr)
    if case == "bad json":
        assert c.returncode == 1 and json.loads(c.stdout)["code"] == 6


def test_add_check_del_through_both_shims(lab: CniLab, both: dict[str, Path], make_netns: Callable[[], Netns],
                                          executor: RunningExecutor) -> None:
    conf = bridge_config(lab)
    pods = {kind: make_netns() for kind in KINDS}
    envs = {kind: shim_env(lab, "ADD", socket=str(executor.socket), container_id=f"id-{kind}", netns=ns.path)
            for kind, ns in pods.items()}

    added = {kind: run_kind(both, kind, "bridge", envs[kind], conf) for kind in KINDS}

    for out in added.values():
        assert out.returncode == 0, out.stdout + out.stderr
    assert normalized(json.loads(added["c"].stdout)) == normalized(json.loads(added["python"].stdout))
    wait_calls(executor, 2)  # the daemon logs a call just after answering it
    assert [e["container_id"] for e in calls(executor, "ADD")] == ["id-c", "id-python"]
    for kind, ns in pods.items():
        assert ip_json("addr", "show", "dev", "eth0", netns=ns.name)[0]["addr_info"]
        checked = run_kind(both, kind, "bridge", {**envs[kind], "CNI_COMMAND": "CHECK"},
                           {**conf, "prevResult": json.loads(added[kind].stdout)})
        assert (checked.returncode, checked.stdout) == (0, b""), checked.stdout
        gone = run_kind(both, kind, "bridge", {**envs[kind], "CNI_COMMAND": "DEL"}, conf)
        assert (gone.returncode, gone.stdout, gone.stderr) == (0, b"", b""), gone.stdout
        assert not link_exists("eth0", netns=ns.name)
    wait_calls(executor, 6)
    assert [e["exit_code"] for e in calls(executor)] == [0] * 6
    assert ip_json("link", "show", "master", lab.bridge) == []
    assert lab.reserved_ips("exnet") == []


@pytest.mark.parametrize("socket", [NO_EXECUTOR, ""])
def test_the_c_shim_runs_in_process_without_an_executor(lab: CniLab, both: dict[str, Path],
                                                        make_netns: Callable[[], Netns], executor: RunningExecutor,
                                                        socket: str) -> None:
    ns = make_netns()
    for command, extra, stdin in (CASES["version"](lab, ns), CASES["bad json"](lab, ns)):
        env = shim_env(lab, command, socket=socket, **extra)
        c, py = (run_kind(both, kind, "bridge", env, stdin) for kind in KINDS)
        assert (c.returncode, c.stdout, c.stderr) == (py.returncode, py.stdout, py.stderr)
    env = shim_env(lab, "ADD", socket=socket, container_id="local", netns=ns.path)
    added = run_kind(both, "c", "bridge", env, bridge_config(lab))
    assert added.returncode == 0, added.stdout + added.stderr
    assert link_exists("eth0", netns=ns.name)
    assert run_kind(both, "c", "bridge", {**env, "CNI_COMMAND": "DEL"}, bridge_config(lab)).returncode == 0
    assert lab.reserved_ips("exnet") == [] and not link_exists("eth0", netns=ns.name)
    assert calls(executor) == [] and executor.events("refused") == []


def test_a_declined_call_runs_in_process(lab: CniLab, both: dict[str, Path], make_netns: Callable[[], Netns],
                                         executor: RunningExecutor) -> None:
    """CNI_NETNS names another file in the caller's mount namespace: declined, run in-process, said with PYCNI_DEBUG."""
    a, b = make_netns(), make_netns()
    conf = bridge_config(lab)
    prefix = ("unshare", "--mount", "--propagation", "private", "sh", "-c",
              f'mount --bind {a.path} {b.path} && exec "$0"')
    outs = {}
    for kind, ifname in (("c", "eth0"), ("python", "eth1")):
        env = shim_env(lab, "ADD", socket=str(executor.socket), container_id=f"d-{kind}", netns=b.path,
                       ifname=ifname, PYCNI_DEBUG="1")
        outs[kind] = run_kind(both, kind, "bridge", env, conf, prefix=prefix)
        assert outs[kind].returncode == 0, outs[kind].stdout + outs[kind].stderr
        assert link_exists(ifname, netns=a.name) and not link_exists(ifname, netns=b.name)
    c_line, py_line = (outs[kind].stderr.splitlines()[0] for kind in KINDS)
    assert c_line == py_line and c_line.startswith(b"pycni: executor did not take the call (")
    assert c_line.endswith(b"); running it in-process")
    assert [e["reason"] for e in executor.events("refused")] == ["foreign_netns_path"] * 2
    assert calls(executor, "ADD") == []
    for kind, ifname in (("c", "eth0"), ("python", "eth1")):
        env = shim_env(lab, "DEL", socket=str(executor.socket), container_id=f"d-{kind}", netns=b.path,
                       ifname=ifname)
        assert run_kind(both, kind, "bridge", env, conf, prefix=prefix).returncode == 0
    assert ip_json("link", "show", "master", lab.bridge) == []
    assert lab.reserved_ips("exnet") == []


@pytest.mark.parametrize("kind", KINDS)
def test_an_executor_killed_during_add_leaves_nothing_and_fails_with_11(
    lab: CniLab, both: dict[str, Path], make_netns: Callable[[], Netns],
    executor_factory: Callable[..., RunningExecutor], kind: str
) -> None:
    executor = executor_factory()
    install_slow_ipam(lab, seconds=4)
    ns = make_netns()
    conf = {**bridge_config(lab), "ipam": {"type": "slow-ipam"}}
    env = shim_env(lab, "ADD", socket=str(executor.socket), container_id=f"killed-{kind}", netns=ns.path,
                   SLOW_IPAM_HOST="7")
    stdin = lab.root / "add.json"
    stdin.write_text(json.dumps(conf))
    with open(stdin, "rb") as f:
        proc = subprocess.Popen([str(both[kind] / "bridge")], stdin=f, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env)
    try:
        def ports() -> list[dict[str, Any]]:
            return ip_json("link", "show", "master", lab.bridge) if link_exists(lab.bridge) else []

        deadline = time.monotonic() + 30  # a port on the bridge: the executor is inside the ADD, waiting on IPAM
        while not ports() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert ports(), "the ADD never got as far as its veth"
        executor.kill(signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, stdout + stderr
    error = json.loads(stdout)
    assert error["code"] == 11 and "executor exited while running ADD; its partial changes were undone" in error["msg"]
    assert not link_exists("eth0", netns=ns.name)
    assert ip_json("link", "show", "master", lab.bridge) == []
    assert calls(executor, "ADD") == []  # the executor never finished it
    # the runtime's DEL (as the spec asks after a failed ADD) finds nothing to do
    gone = run_kind(both, kind, "bridge", {**env, "CNI_COMMAND": "DEL"}, conf)
    assert (gone.returncode, gone.stdout) == (0, b""), gone.stdout


def test_killing_the_executor_during_a_stream_of_adds_with_python_shims(
    lab: CniLab, make_netns: Callable[[], Netns], executor_factory: Callable[..., RunningExecutor]
) -> None:
    """tests/executor/test_robustness's stream test runs with the default (C) shims; this is the Python shims' run."""
    install_kind(lab.bin_dir, "python", "bridge", "host-local")
    assert (lab.bin_dir / "bridge").read_text().startswith("#!")
    test_robustness.test_killing_the_executor_during_a_stream_of_adds(lab, make_netns, executor_factory)


def _python_for_nobody() -> str | None:
    """A Python of this version that uid 65534 can run (a pyenv Python under /root is not one)."""
    candidates = [sys.executable, f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"]
    for python in candidates:
        ok = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "/bin/sh", "-c",
                             'exec "$0" -I -S -c "import sys; print(sys.version_info[:2])"', python],
                            capture_output=True, text=True, timeout=60, check=False)
        if ok.returncode == 0 and ok.stdout.strip() == str(tuple(sys.version_info[:2])):
            return python
    return None


def test_a_c_shim_run_by_another_user_falls_back_in_process(lab: CniLab, both: dict[str, Path],
                                                            executor: RunningExecutor) -> None:
    python = _python_for_nobody()
    if python is None:
        pytest.skip("no Python of this version that uid 65534 may run")
    binary = cshim.build_shim_binary()
    assert binary is not None
    shims = Path(tempfile.mkdtemp(prefix="pcx-shims-", dir="/tmp"))
    try:
        shims.chmod(0o755)
        shim = shims / "bridge"
        shim.write_bytes(patch_config(binary, "bridge", python, import_roots()))
        shim.chmod(0o755)
        os.chmod(executor.directory, 0o755)  # the socket itself stays 0600
        env = shim_env(lab, "VERSION", socket=str(executor.socket), PYTHONDONTWRITEBYTECODE="1", PYCNI_DEBUG="1")
        out = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", str(shim)],
                             input=b"{}", env=env, capture_output=True, timeout=60)
    finally:
        shutil.rmtree(shims)
    assert out.returncode == 0 and b"supportedVersions" in out.stdout, out.stdout + out.stderr
    assert out.stderr == b""  # it could not connect (no decline to report) and ran the plugin itself
    assert not executor.events("call") and not executor.events("refused")
