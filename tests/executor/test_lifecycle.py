"""Starting and stopping the executor: --daemon, systemd socket activation, SIGTERM, metrics, one per socket."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.executor.running import REPO_ROOT, RunningExecutor, start_executor
from tests.executor.shims import run_shim, shim_env
from tests.support.cnilab import CniLab


@pytest.fixture
def short_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="pcx-", dir="/tmp"))
    yield directory
    import shutil

    shutil.rmtree(directory, ignore_errors=True)


def pycni(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pycni", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, cwd="/")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pid: int, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pid)


def version_via(lab: CniLab, socket_path: Path) -> subprocess.CompletedProcess[bytes]:
    return run_shim(lab, "bridge", shim_env(lab, "VERSION", socket=str(socket_path)), b"{}")


def kill_daemons_serving(sock: Path) -> None:
    """SIGKILL every process whose command line names ``sock`` (a path unique to one test), by pid.

    A detached daemon outlives its test: when the test fails before it stops the daemon (``--daemon``
    slower than the timeout on a loaded machine, no pid file), nothing else ever would.
    """
    needle = str(sock).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes().split(b"\0"):
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue


def test_daemon_mode_returns_when_ready_and_stops_cleanly_on_sigterm(lab: CniLab, short_dir: Path) -> None:
    lab.install_pycni("bridge")
    sock, pid_file, log = short_dir / "ex.sock", short_dir / "ex.pid", short_dir / "ex.log"
    try:
        out = pycni("executor", "--daemon", "--socket", str(sock), "--pid-file", str(pid_file), "--log-file", str(log))
        assert out.returncode == 0, out.stderr
        pid = int(pid_file.read_text())
    except BaseException:
        kill_daemons_serving(sock)
        raise
    try:
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600 and stat.S_ISSOCK(sock.stat().st_mode)
        assert os.getsid(pid) == pid or os.getsid(pid) != os.getsid(0)  # detached from our session
        assert version_via(lab, sock).returncode == 0
        # the daemon logs a call after it has answered it: give the log line a moment
        deadline = time.monotonic() + 5
        while '"event": "call"' not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert '"event": "call"' in log.read_text()
    finally:
        os.kill(pid, signal.SIGTERM)
    try:
        wait_gone(pid)
    finally:
        kill_daemons_serving(sock)  # workers too, should the supervisor have failed to stop them
    assert not sock.exists() and not pid_file.exists()
    assert '"event": "stopped"' in log.read_text()


def test_daemon_mode_reports_why_it_could_not_start(short_dir: Path) -> None:
    out = pycni("executor", "--daemon", "--socket", "/dev/null/executor.sock", "--pid-file",
                str(short_dir / "ex.pid"), "--log-file", str(short_dir / "ex.log"))
    assert out.returncode == 1 and out.stderr.startswith("pycni executor: ") and "/dev/null" in out.stderr
    assert not (short_dir / "ex.pid").exists()


def test_a_second_executor_on_the_same_socket_refuses_to_start(executor: RunningExecutor) -> None:
    out = pycni("executor", "--socket", str(executor.socket), "--no-preload", "--log-file", os.devnull)
    assert out.returncode == 1 and "another executor is listening" in out.stderr
    assert executor.alive()


def test_a_stale_socket_file_is_replaced(lab: CniLab, executor_factory: Callable[..., RunningExecutor]) -> None:
    lab.install_pycni("bridge")
    first = executor_factory()
    first.kill(signal.SIGKILL)
    assert first.socket.exists()
    second = executor_factory(directory=first.directory)
    assert version_via(lab, second.socket).returncode == 0
    second.wait_for("call")


def test_socket_activation(lab: CniLab, short_dir: Path) -> None:
    """systemd's protocol: the listening socket is fd 3, LISTEN_FDS=1, LISTEN_PID=<the executor's pid>."""
    lab.install_pycni("bridge")
    path = short_dir / "activated.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(16)
    log = short_dir / "ex.log"
    cmd = f'LISTEN_PID=$$ LISTEN_FDS=1 exec "{sys.executable}" -m pycni executor --log-file "{log}"'
    proc = subprocess.Popen(["sh", "-c", cmd], pass_fds=(3,),
                            preexec_fn=lambda: os.dup2(listener.fileno(), 3),
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, cwd="/",
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        running = RunningExecutor(proc, short_dir, ())
        (short_dir / "executor.log").symlink_to(log)
        started = running.wait_for("listening", timeout=90)
        assert started["socket_activated"] is True
        assert version_via(lab, path).returncode == 0
        running.wait_for("call")
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=40)
        assert path.exists(), "the socket belongs to systemd: the executor must not remove it"
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()
        listener.close()


def test_metrics_count_calls_and_errors(lab: CniLab, executor_factory: Callable[..., RunningExecutor]) -> None:
    lab.install_pycni("bridge", "host-local")
    executor = executor_factory("--metrics", "127.0.0.1:0")
    addr = executor.wait_for("metrics_listening")["addr"]
    assert version_via(lab, executor.socket).returncode == 0
    bad = run_shim(lab, "bridge", shim_env(lab, "ADD", socket=str(executor.socket), container_id="c", netns="/x"),
                   b"{broken")
    assert bad.returncode == 1
    executor.wait_for("call", lambda e: e["command"] == "ADD")
    expected = ['pycni_executor_requests_total{plugin="bridge",command="VERSION"} 1',
                'pycni_executor_errors_total{plugin="bridge",command="ADD",code="6"} 1',
                'pycni_executor_request_duration_seconds_count{plugin="bridge",command="ADD"} 1',
                "pycni_executor_in_flight 0"]
    # Worker processes relay their counts to the supervisor as datagrams: a scrape may come a moment early.
    deadline = time.monotonic() + 10
    while True:
        with urllib.request.urlopen(f"http://{addr}/metrics", timeout=10) as reply:
            text = reply.read().decode()
        missing = [line for line in expected if line not in text]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert missing == [], text


def test_start_executor_helper_cleans_up(short_dir: Path) -> None:
    running = start_executor("--no-preload", directory=short_dir)
    pid = running.pid
    running.stop(remove=False)
    assert not pid_alive(pid) and not running.socket.exists()
