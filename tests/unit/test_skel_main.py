"""skel.main: a plugin script run as a real process, with env and stdin, like a runtime runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PLUGIN = Path(__file__).resolve().parent / "fixtures" / "echo_plugin.py"
TIMEOUT = 30

ATTACHMENT_ENV = {
    "CNI_CONTAINERID": "ctr1",
    "CNI_NETNS": "/var/run/netns/pycni-test-absent",
    "CNI_IFNAME": "eth0",
    "CNI_PATH": "/opt/cni/bin",
}


def plugin_env(**cni: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO_ROOT), **cni}


def run(env: dict[str, str], stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, str(PLUGIN)], input=stdin, env=env, capture_output=True, timeout=TIMEOUT, check=False
    )


def request(version: str = "1.1.0", **extra: Any) -> bytes:
    return json.dumps({"cniVersion": version, "name": "testnet", "type": "echo", **extra}).encode()


def test_add_prints_the_result_and_exits_0() -> None:
    proc = run(plugin_env(CNI_COMMAND="ADD", **ATTACHMENT_ENV), request(address="10.9.0.7/16"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/pycni-test-absent"}],
        "ips": [{"interface": 0, "address": "10.9.0.7/16"}],
    }
    assert not proc.stdout.endswith(b"\n")
    assert b"stray debugging output" in proc.stderr  # print() inside a handler goes to stderr


def test_add_in_0_2_0() -> None:
    proc = run(plugin_env(CNI_COMMAND="ADD", **ATTACHMENT_ENV), request("0.2.0"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.2/24"}}


def test_version() -> None:
    proc = run(plugin_env(CNI_COMMAND="VERSION"), b'{"cniVersion": "0.4.0"}')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.endswith(b"\n")
    assert json.loads(proc.stdout)["cniVersion"] == "0.4.0"
    assert "1.1.0" in json.loads(proc.stdout)["supportedVersions"]


@pytest.mark.parametrize(("fail", "code"), [("cni", 7), ("boom", 999)])
def test_errors_are_json_on_stdout_with_exit_1(fail: str, code: int) -> None:
    proc = run(plugin_env(CNI_COMMAND="CHECK", **ATTACHMENT_ENV), request(fail=fail))
    assert proc.returncode == 1
    body = json.loads(proc.stdout)
    assert body["code"] == code
    assert body["cniVersion"] == "1.1.0"
    assert b"Traceback" not in proc.stdout
    assert b"Traceback" not in proc.stderr


def test_debug_traceback_goes_to_stderr() -> None:
    proc = run(plugin_env(CNI_COMMAND="DEL", PYCNI_DEBUG="1", **ATTACHMENT_ENV), request(fail="boom"))
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["code"] == 999
    assert b"Traceback" in proc.stderr
    assert b"ValueError: echo: unexpected failure in DEL" in proc.stderr


def test_missing_env_is_code_4() -> None:
    proc = run(plugin_env(CNI_COMMAND="ADD"), request())
    assert proc.returncode == 1
    assert json.loads(proc.stdout) == {
        "code": 4,
        "msg": "required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH] missing",
    }


def test_del_with_vanished_or_no_netns_succeeds() -> None:
    for netns in ("/var/run/netns/pycni-test-absent", ""):
        proc = run(plugin_env(CNI_COMMAND="DEL", **{**ATTACHMENT_ENV, "CNI_NETNS": netns}), request())
        assert (proc.returncode, proc.stdout) == (0, b""), proc.stderr


def test_own_netns_is_refused_unless_overridden() -> None:
    # In the plugin process, /proc/self/ns/net is the plugin's own namespace.
    env = plugin_env(CNI_COMMAND="ADD", **{**ATTACHMENT_ENV, "CNI_NETNS": "/proc/self/ns/net"})
    proc = run(env, request())
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["code"] == 8
    proc = run({**env, "CNI_NETNS_OVERRIDE": "true"}, request())
    assert proc.returncode == 0, proc.stderr


def test_bare_run_prints_about_without_reading_stdin() -> None:
    read_end, write_end = os.pipe()  # stdin that never reaches EOF while we hold write_end
    try:
        proc = subprocess.run(
            [sys.executable, str(PLUGIN)], stdin=read_end, env=plugin_env(), capture_output=True, timeout=TIMEOUT
        )
    finally:
        os.close(read_end)
        os.close(write_end)
    assert proc.returncode == 0
    assert proc.stdout == b""
    assert proc.stderr.startswith(b"CNI echo plugin (pycni test fixture)\nCNI protocol versions supported: 0.1.0, ")
