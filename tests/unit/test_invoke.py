"""Plugin lookup and execution against real (tiny shell-script) plugins."""

from __future__ import annotations

import io
import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from pycni.runtime.invoke import ExecFailed, PluginNotFound, PluginTimeout, RawExec, find_in_path
from pycni.spec.errors import CniError, InvalidConfig, InvalidEnvironment, TryAgainLater

ENV = {
    "CNI_COMMAND": "ADD",
    "CNI_CONTAINERID": "ctr1",
    "CNI_NETNS": "/run/netns/x",
    "CNI_IFNAME": "eth0",
    "CNI_ARGS": "IgnoreUnknown=1",
    "CNI_PATH": "/opt/cni/bin",
}


def plugin(directory: Path, name: str, body: str, mode: int = 0o755) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(mode)
    return str(path)


def run(path: str, stdin: bytes = b"{}", env: dict[str, str] | None = None, **kw: Any) -> bytes:
    return RawExec(**kw).exec_plugin(path, stdin, ENV if env is None else env, timeout=10)


# --------------------------------------------------------------------------
# find_in_path
# --------------------------------------------------------------------------


def test_find_first_regular_file_in_order(tmp_path: Path) -> None:
    (tmp_path / "a" / "bridge").mkdir(parents=True)  # a directory is not a plugin
    plugin(tmp_path / "b", "bridge", "", mode=0o644)  # exec bit is not checked at lookup
    plugin(tmp_path / "c", "bridge", "")
    dirs = [str(tmp_path / "a"), str(tmp_path / "b"), str(tmp_path / "c")]
    assert find_in_path("bridge", dirs) == str(tmp_path / "b" / "bridge")


def test_find_follows_symlinks(tmp_path: Path) -> None:
    target = plugin(tmp_path / "real", "bridge", "")
    (tmp_path / "bin").mkdir()
    os.symlink(target, tmp_path / "bin" / "bridge")
    os.symlink(tmp_path / "nowhere", tmp_path / "bin" / "dangling")
    assert find_in_path("bridge", [str(tmp_path / "bin")]) == str(tmp_path / "bin" / "bridge")
    with pytest.raises(PluginNotFound):
        find_in_path("dangling", [str(tmp_path / "bin")])


def test_find_skips_empty_path_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plugin(tmp_path, "bridge", "")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PluginNotFound):
        find_in_path("bridge", ["", str(tmp_path / "empty")])


def test_find_not_found_message(tmp_path: Path) -> None:
    dirs = [str(tmp_path / "a"), str(tmp_path / "b")]
    with pytest.raises(PluginNotFound) as err:
        find_in_path("bridge", dirs)
    assert err.value.msg == f'failed to find plugin "bridge" in path [{dirs[0]} {dirs[1]}]'
    assert err.value.plugin_type == "bridge"
    assert err.value.paths == tuple(dirs)


@pytest.mark.parametrize(
    ("plugin_type", "paths", "error", "message"),
    [
        ("", ["/x"], InvalidConfig, "no plugin name provided"),
        ("../bridge", ["/x"], InvalidConfig, "invalid plugin name"),
        ("a\\b", ["/x"], InvalidConfig, "invalid plugin name"),
        ("bridge", [], InvalidEnvironment, "no paths provided"),
    ],
)
def test_find_argument_errors(plugin_type: str, paths: list[str], error: type[CniError], message: str) -> None:
    with pytest.raises(error) as err:
        find_in_path(plugin_type, paths)
    assert err.value.msg == message


# --------------------------------------------------------------------------
# execution
# --------------------------------------------------------------------------


def test_env_and_stdin_reach_the_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIME_VAR", "kept")
    monkeypatch.setenv("CNI_IFNAME", "stale-from-runtime-env")
    path = plugin(
        tmp_path,
        "echo",
        'printf \'{"env":{"cmd":"%s","cid":"%s","netns":"%s","ifname":"%s","args":"%s","path":"%s","rt":"%s"},'
        '"stdin":%s}\' "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_NETNS" "$CNI_IFNAME" "$CNI_ARGS" "$CNI_PATH" '
        '"$RUNTIME_VAR" "$(cat)"\n',
    )
    out = json.loads(run(path, stdin=b'{"cniVersion":"1.1.0","name":"net"}'))
    assert out["env"] == {
        "cmd": "ADD",
        "cid": "ctr1",
        "netns": "/run/netns/x",
        "ifname": "eth0",  # ours win over the runtime's own CNI_*
        "args": "IgnoreUnknown=1",
        "path": "/opt/cni/bin",
        "rt": "kept",  # the runtime's environment is inherited
    }
    assert out["stdin"] == {"cniVersion": "1.1.0", "name": "net"}


def test_stderr_forwarded_on_success(tmp_path: Path) -> None:
    path = plugin(tmp_path, "noisy", "echo 'a log line' >&2\necho '{}'\n")
    sink = io.StringIO()
    assert run(path, stderr=sink) == b"{}\n"
    assert sink.getvalue() == "a log line\n"


def test_error_json_becomes_typed_error(tmp_path: Path) -> None:
    path = plugin(
        tmp_path,
        "bad",
        'echo \'{"cniVersion":"1.0.0","code":7,"msg":"ipam.subnet: bad","details":"10.0.0.0/33"}\'\nexit 1\n',
    )
    with pytest.raises(InvalidConfig) as err:
        run(path)
    assert (err.value.code, err.value.msg, err.value.details) == (7, "ipam.subnet: bad", "10.0.0.0/33")


def test_error_json_with_plugin_specific_code(tmp_path: Path) -> None:
    path = plugin(tmp_path, "bad", 'echo \'{"code":123,"msg":"custom"}\'\nexit 1\n')
    with pytest.raises(CniError) as err:
        run(path)
    assert (type(err.value), err.value.code, err.value.msg) == (CniError, 123, "custom")


def test_failure_with_empty_stdout_folds_in_stderr(tmp_path: Path) -> None:
    path = plugin(tmp_path, "bad", "echo 'it broke' >&2\nexit 2\n")
    with pytest.raises(ExecFailed) as err:
        run(path)
    assert err.value.code == 999
    assert err.value.msg == 'netplugin failed: "it broke\\n": exit status 2'
    assert err.value.exit_status == 2
    assert err.value.stderr == b"it broke\n"


def test_failure_without_any_message(tmp_path: Path) -> None:
    path = plugin(tmp_path, "bad", "exit 3\n")
    with pytest.raises(ExecFailed) as err:
        run(path)
    assert err.value.msg == "netplugin failed with no error message: exit status 3"


def test_failure_with_unparsable_stdout(tmp_path: Path) -> None:
    path = plugin(tmp_path, "bad", "echo garbage\nexit 1\n")
    with pytest.raises(ExecFailed) as err:
        run(path)
    assert err.value.msg.startswith('netplugin failed but error parsing its diagnostic message "garbage\\n": ')


def test_killed_by_signal(tmp_path: Path) -> None:
    path = plugin(tmp_path, "bad", "kill -9 $$\n")
    with pytest.raises(ExecFailed, match="signal: SIGKILL"):
        run(path)


def test_not_executable(tmp_path: Path) -> None:
    path = plugin(tmp_path, "noexec", "echo '{}'\n", mode=0o644)
    with pytest.raises(ExecFailed, match=r"failed to execute plugin .*noexec: Permission denied"):
        run(path)


def _alive(pid: int) -> bool:
    # A zombie counts as dead: nothing may reap orphans inside a container.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_timeout_kills_the_plugin_and_its_children_quickly(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    path = plugin(tmp_path, "hang", f"sleep 60 &\necho $! > {pidfile}\necho $$ >> {pidfile}\nwait\n")
    started = time.monotonic()
    with pytest.raises(PluginTimeout) as err:
        RawExec().exec_plugin(path, b"{}", ENV, timeout=0.5)
    elapsed = time.monotonic() - started
    assert elapsed < 5
    assert isinstance(err.value, TryAgainLater) and err.value.code == 11
    assert err.value.msg == 'plugin "hang" timed out after 0.5s'
    pids = [int(line) for line in pidfile.read_text().split()]
    deadline = time.monotonic() + 2
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids)


def test_text_file_busy_is_retried_with_a_fresh_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = plugin(tmp_path, "busy", "echo '{\"ok\":true}'\n")
    writer = open(path, "a")  # an open writer makes exec fail with ETXTBSY  # noqa: SIM115
    attempts: list[int] = []
    real_popen = subprocess.Popen

    def counting_popen(*args: Any, **kwargs: Any) -> Any:
        attempts.append(1)
        return real_popen(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", counting_popen)
    threading.Timer(0.15, writer.close).start()
    assert run(path, busy_delay=0.1) == b'{"ok":true}\n'
    assert len(attempts) >= 2


def test_text_file_busy_gives_up(tmp_path: Path) -> None:
    path = plugin(tmp_path, "busy", "echo '{}'\n")
    with open(path, "a"):
        started = time.monotonic()
        with pytest.raises(ExecFailed, match="Text file busy"):
            run(path, busy_attempts=3, busy_delay=0.05)
        assert 0.1 <= time.monotonic() - started < 2


def test_timeout_without_own_process_group_kills_the_plugin(tmp_path: Path) -> None:
    # How a plugin runs its IPAM delegate: in its own group, so the runtime's group kill covers both.
    path = plugin(tmp_path, "hang", "exec sleep 60\n")
    started = time.monotonic()
    with pytest.raises(PluginTimeout):
        RawExec(new_process_group=False).exec_plugin(path, b"{}", ENV, timeout=0.3)
    assert time.monotonic() - started < 5
