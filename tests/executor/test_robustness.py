"""Nothing a client or a plugin does wedges or kills the executor; a killed executor leaves nothing half-made."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pycni.cli.install import cmd_install
from pycni.executor import protocol
from pycni.runtime import CniConfig, RuntimeConf, load_network_conf
from pycni.spec.errors import CniError
from tests.executor.running import REPO_ROOT, RunningExecutor
from tests.executor.shims import NO_EXECUTOR, bridge_config, install_slow_ipam, run_shim, shim_env
from tests.support.cnilab import GO_PLUGIN_DIR, CniLab
from tests.support.host import ip_json, link_exists
from tests.support.netns import Netns


def still_serving(lab: CniLab, executor: RunningExecutor) -> None:
    """A VERSION call through a shim is answered by the executor itself."""
    before = len(executor.events("call"))
    out = run_shim(lab, "bridge", shim_env(lab, "VERSION", socket=str(executor.socket)), b"{}")
    assert out.returncode == 0 and b"supportedVersions" in out.stdout
    executor.wait_for("call", lambda e: len(executor.events("call")) > before, timeout=10)
    assert executor.alive()


def connect(executor: RunningExecutor) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(15)
    sock.connect(str(executor.socket))
    return sock


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(4096):
        chunks.append(chunk)
    return b"".join(chunks)


def namespace_fds(netns: str | None = None) -> list[int]:
    fds = [os.open("/proc/self/ns/net", os.O_RDONLY), os.open("/", os.O_PATH), os.open("/sys", os.O_PATH)]
    if netns:
        fds.append(os.open(netns, os.O_PATH))
    return fds


def send_request(sock: socket.socket, frame: bytes, fds: list[int]) -> None:
    try:
        socket.send_fds(sock, [frame], fds)
    finally:
        for fd in fds:
            os.close(fd)


def version_frame() -> bytes:
    env = protocol.encode_env({b"CNI_COMMAND": b"VERSION", b"PATH": b"/usr/bin:/bin"})
    return protocol.encode_request(b"bridge", env, b"{}")


@pytest.fixture
def installed(lab: CniLab) -> CniLab:
    lab.install_pycni("bridge", "host-local")
    return lab


# -- clients -----------------------------------------------------------------


def test_a_client_that_is_not_root_is_refused(installed: CniLab, executor: RunningExecutor) -> None:
    os.chmod(executor.directory, 0o755)
    os.chmod(executor.socket, 0o666)  # let uid 65534 reach the daemon's own check (the file mode is 0600)
    client = (
        "import os, socket, sys\n"
        "s = socket.socket(socket.AF_UNIX); s.settimeout(15); s.connect(sys.argv[1])\n"
        "fds = [os.open('/proc/self/ns/net', os.O_RDONLY), os.open('/', os.O_PATH), os.open('/sys', os.O_PATH)]\n"
        "try:\n"
        "    socket.send_fds(s, [bytes.fromhex(sys.argv[2])], fds)\n"
        "except OSError:\n"
        "    pass  # the executor may answer and close before reading anything\n"
        "data = b''\n"
        "while chunk := s.recv(4096): data += chunk\n"
        "sys.stdout.write(data.hex())\n"
    )
    out = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", sys.executable, "-c",
                          client, str(executor.socket), version_frame().hex()],
                         capture_output=True, text=True, timeout=60, env={"PATH": os.environ["PATH"]})
    assert out.returncode == 0, out.stderr
    reply = bytes.fromhex(out.stdout)
    assert reply[:1] == protocol.DECLINE and b"is not root" in reply
    assert [e["reason"] for e in executor.events("refused")] == ["not_root"]
    assert not executor.events("call")
    still_serving(installed, executor)


def test_a_shim_run_by_another_user_falls_back_in_process(installed: CniLab, executor: RunningExecutor) -> None:
    shims = Path(tempfile.mkdtemp(prefix="pcx-shims-", dir="/tmp"))
    try:
        shims.chmod(0o755)
        # The Python shim: nobody may be unable to exec this Python (a pyenv under /root), which only the kernel's
        # shebang handling gets past; the C shim's variant is tests/executor/test_cshim_forwarding.py's.
        cmd_install(argparse.Namespace(bin_dir=str(shims), plugins=["bridge"], force=False, shim="python"), {})
        os.chmod(executor.directory, 0o755)  # the socket itself stays 0600
        env = shim_env(installed, "VERSION", socket=str(executor.socket), PYTHONDONTWRITEBYTECODE="1")
        out = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                              str(shims / "bridge")], input=b"{}", env=env, capture_output=True, timeout=60)
    finally:
        shutil.rmtree(shims)
    assert out.returncode == 0 and b"supportedVersions" in out.stdout, out.stderr
    assert not executor.events("call")  # it could not connect, and ran the plugin itself
    assert not executor.events("refused")


@pytest.mark.parametrize(
    ("name", "payload", "with_fds"),
    [
        ("http", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", True),
        ("no descriptors", version_frame(), False),
        ("lengths beyond the limits", protocol.MAGIC + bytes([6]) + (2**32 - 1).to_bytes(4, "big") + bytes(4), True),
        ("bad plugin type", protocol.encode_request(b"../sh", b"", b""), True),
        ("unknown plugin", protocol.encode_request(b"nosuch", b"", b""), True),
        ("bad environment", protocol.MAGIC + bytes([6]) + (3).to_bytes(4, "big") + bytes(4) + b"bridgeA=1", True),
    ],
)
def test_malformed_requests_are_declined(installed: CniLab, executor: RunningExecutor, name: str, payload: bytes,
                                         with_fds: bool) -> None:
    with connect(executor) as sock:
        if with_fds:
            send_request(sock, payload, namespace_fds())
        else:
            sock.sendall(payload)
        reply = read_all(sock)
    assert reply[:1] == protocol.DECLINE, reply
    assert executor.events("refused")[-1]["reason"] in ("malformed", "unknown_plugin")
    still_serving(installed, executor)


def test_a_request_that_never_finishes_sending_times_out(installed: CniLab,
                                                         executor_factory: Callable[..., RunningExecutor]) -> None:
    executor = executor_factory("--io-timeout", "1")
    stalled = [connect(executor) for _ in range(20)]
    try:
        for sock in stalled:
            sock.sendall(version_frame()[:7])  # half a header
        still_serving(installed, executor)  # meanwhile, calls are served
        started = time.monotonic()
        for sock in stalled:
            reply = read_all(sock)
            assert reply[:1] in (protocol.DECLINE, b"")
        assert time.monotonic() - started < 10
    finally:
        for sock in stalled:
            sock.close()
    assert sum(e["reason"] == "timeout" for e in executor.events("refused")) == 20
    still_serving(installed, executor)


def test_a_client_that_never_says_go_runs_nothing(installed: CniLab, make_netns: Callable[[], Netns],
                                                  executor_factory: Callable[..., RunningExecutor]) -> None:
    executor = executor_factory("--io-timeout", "1")
    ns = make_netns()
    env = protocol.encode_env({b"CNI_COMMAND": b"ADD", b"CNI_CONTAINERID": b"nogo", b"CNI_NETNS": ns.path.encode(),
                               b"CNI_IFNAME": b"eth0", b"CNI_PATH": os.pathsep.join(installed.cni_path).encode()})
    with connect(executor) as sock:
        send_request(sock, protocol.encode_request(b"bridge", env, json.dumps(bridge_config(installed)).encode()),
                     namespace_fds(ns.path))
        assert sock.recv(1) == protocol.READY
        assert read_all(sock) == b""  # closed after io-timeout without running anything
    assert not link_exists("eth0", netns=ns.name) and installed.reserved_ips("exnet") == []
    assert executor.events("refused")[-1]["reason"] == "no_go"
    still_serving(installed, executor)


# -- plugins -----------------------------------------------------------------




def test_a_call_that_outlives_its_timeout_fails_with_11_and_is_undone(
    installed: CniLab, make_netns: Callable[[], Netns], executor_factory: Callable[..., RunningExecutor]
) -> None:
    executor = executor_factory("--timeout", "1.5")
    install_slow_ipam(installed, seconds=4)
    ns = make_netns()
    conf = {**bridge_config(installed), "ipam": {"type": "slow-ipam"}}
    env = shim_env(installed, "ADD", socket=str(executor.socket), container_id="slow", netns=ns.path,
                   SLOW_IPAM_HOST="9")

    started = time.monotonic()
    out = run_shim(installed, "bridge", env, conf)

    assert time.monotonic() - started < 4
    assert out.returncode == 1
    error = json.loads(out.stdout)
    assert error["code"] == 11 and "did not finish within 1.5s" in error["msg"]
    still_serving(installed, executor)  # while the stuck worker still sleeps
    # The worker finishes the ADD after the caller was told it failed: the executor undoes it.
    executor.wait_for("undone", timeout=30)
    assert not link_exists("eth0", netns=ns.name)
    assert ip_json("link", "show", "master", installed.bridge) == []
    assert executor.events("call")[0]["timed_out"] is True
    still_serving(installed, executor)


# -- the executor dies -------------------------------------------------------


HELD_HOST_LOCAL = """#!/bin/sh
out=$({host_local})
status=$?
if [ "$CNI_COMMAND" = ADD ]; then sleep 0.3; fi
printf '%s' "$out"
exit $status
"""


def test_killing_the_executor_during_a_stream_of_adds(
    installed: CniLab, make_netns: Callable[[], Netns], executor_factory: Callable[..., RunningExecutor]
) -> None:
    """kill -9 while an ADD is half done: every ADD succeeds or fails cleanly, nothing half-made or leaked."""
    executor = executor_factory()
    # An ADD takes ~15 ms: too short to kill reliably between its veth and its
    # answer. This IPAM is host-local (Go's, same on-disk store) that holds its
    # answer 0.3 s after reserving, so every ADD has a window with the veth
    # made, the address reserved and the result not yet returned.
    plugin = installed.bridge_plugin()
    plugin["ipam"]["type"] = "held-host-local"
    held = installed.bin_dir / "held-host-local"
    held.write_text(HELD_HOST_LOCAL.format(host_local=os.path.join(GO_PLUGIN_DIR, "host-local")))
    held.chmod(0o755)
    installed.write_conflist("exnet", [plugin])
    netlist = load_network_conf(str(installed.conf_dir), "exnet")
    pods = [make_netns() for _ in range(12)]
    outcomes: dict[str, Any] = {}
    done = threading.Event()

    def stream() -> None:
        cni = CniConfig(installed.cni_path, cache_dir=str(installed.cache_dir))
        for i, ns in enumerate(pods):
            try:
                outcomes[ns.name] = cni.add_network_list(netlist, RuntimeConf(f"pod{i}", ns.path, "eth0"))
            except CniError as exc:
                outcomes[ns.name] = exc
            except BaseException as exc:  # anything else is not "clean"
                outcomes[ns.name] = exc
        done.set()

    os.environ["PYCNI_EXECUTOR_SOCKET"] = str(executor.socket)  # the runtime library execs shims with os.environ
    try:
        worker = threading.Thread(target=stream)
        worker.start()
        # Kill exactly while an ADD is half made: its host veth exists, its ADD has not returned.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not done.is_set():
            ports = ip_json("link", "show", "master", installed.bridge) if link_exists(installed.bridge) else []
            if len(ports) > len(outcomes) and len(outcomes) >= 2:
                executor.kill(signal.SIGKILL)
                break
            time.sleep(0.002)
        worker.join(timeout=300)
    finally:
        os.environ.pop("PYCNI_EXECUTOR_SOCKET", None)
    assert not executor.alive(), "the stream ended before the executor could be killed mid-ADD"

    failed = {name: exc for name, exc in outcomes.items() if not hasattr(exc, "ips")}
    succeeded = {name: result for name, result in outcomes.items() if name not in failed}
    assert len(outcomes) == len(pods)
    for name, exc in failed.items():
        assert isinstance(exc, CniError), f"{name}: not a clean failure: {exc!r}"
        assert exc.code == 11 and "executor exited while running ADD" in str(exc), exc
    assert len(failed) == 1, f"exactly the ADD in flight fails: {failed}"
    # Before any DEL: the failed ADD left nothing; the others are complete.
    for ns in pods:
        assert link_exists("eth0", netns=ns.name) == (ns.name in succeeded), ns.name
    assert len(ip_json("link", "show", "master", installed.bridge)) == len(succeeded)
    assert len(installed.reserved_ips("exnet")) == len(succeeded)

    # The runtime DELs every attachment (also the failed one, as the spec asks): nothing leaks.
    cni = CniConfig(installed.cni_path, cache_dir=str(installed.cache_dir))
    for i, ns in enumerate(pods):
        cni.del_network_list(netlist, RuntimeConf(f"pod{i}", ns.path, "eth0"))
    assert ip_json("link", "show", "master", installed.bridge) == []
    assert installed.reserved_ips("exnet") == []

    # The next ADD succeeds: in-process while the executor is gone, then through a restarted one.
    for socket_path, pod in ((str(executor.socket), make_netns()), (None, make_netns())):
        if socket_path is None:
            executor = executor_factory(directory=executor.directory)
            socket_path = str(executor.socket)
        env = shim_env(installed, "ADD", socket=socket_path, container_id=f"next-{pod.name}", netns=pod.path)
        out = run_shim(installed, "bridge", env, bridge_config(installed))
        assert out.returncode == 0, out.stdout
        assert run_shim(installed, "bridge", {**env, "CNI_COMMAND": "DEL"}, bridge_config(installed)).returncode == 0
    assert [e["container_id"] for e in executor.events("call") if e["command"] == "ADD"][-1].startswith("next-")
    assert installed.reserved_ips("exnet") == []


def test_a_plugin_that_raises_or_exits_does_not_kill_the_executor(
    installed: CniLab, make_netns: Callable[[], Netns], executor: RunningExecutor
) -> None:
    """A delegate that is not an IPAM plugin at all, and garbage from it: clean errors, daemon alive."""
    broken = installed.bin_dir / "broken-ipam"
    broken.write_text("#!/bin/sh\necho 'not json'\nexit 3\n")
    broken.chmod(0o755)
    ns = make_netns()
    env = shim_env(installed, "ADD", socket=str(executor.socket), container_id="broken", netns=ns.path)
    out = run_shim(installed, "bridge", env, {**bridge_config(installed), "ipam": {"type": "broken-ipam"}})
    assert out.returncode == 1 and json.loads(out.stdout)["code"] == 999
    assert not link_exists("eth0", netns=ns.name)
    local = run_shim(installed, "bridge", {**env, "PYCNI_EXECUTOR_SOCKET": NO_EXECUTOR},
                     {**bridge_config(installed), "ipam": {"type": "broken-ipam"}})
    assert (local.returncode, local.stdout) == (out.returncode, out.stdout)
    still_serving(installed, executor)
    assert REPO_ROOT.is_dir()
