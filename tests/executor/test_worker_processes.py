"""The executor's worker processes: one that dies is replaced and its call ends cleanly; none outlives the executor."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.executor.running import RunningExecutor
from tests.executor.shims import bridge_config, install_slow_ipam, run_shim, shim_env
from tests.executor.test_robustness import still_serving
from tests.support.cnilab import CniLab
from tests.support.host import ip_json, link_exists
from tests.support.netns import Netns


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def workers(executor: RunningExecutor) -> list[int]:
    """The executor's worker processes now (its children)."""
    children = Path(f"/proc/{executor.pid}/task/{executor.pid}/children").read_text().split()
    return [int(pid) for pid in children]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.05)


def process_running(name: str) -> int | None:
    """The pid of a process whose command line mentions ``name``, or None."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if name.encode() in (entry / "cmdline").read_bytes():
                    return int(entry.name)
            except OSError:
                continue
    return None


def test_a_worker_killed_during_an_add_is_replaced_and_the_add_fails_cleanly(
    lab: CniLab, make_netns: Callable[[], Netns], executor_factory: Callable[..., RunningExecutor]
) -> None:
    lab.install_pycni("bridge")
    install_slow_ipam(lab, seconds=3)
    executor = executor_factory("--processes", "2")
    wait_until(lambda: len(executor.events("worker_started")) == 2, 60, "two workers")
    ns = make_netns()
    conf = {**bridge_config(lab), "ipam": {"type": "slow-ipam"}}
    env = shim_env(lab, "ADD", socket=str(executor.socket), container_id="killed", netns=ns.path,
                   SLOW_IPAM_HOST="9")
    outcome: dict[str, subprocess.CompletedProcess[bytes]] = {}
    add = threading.Thread(target=lambda: outcome.update(out=run_shim(lab, "bridge", env, conf)))
    add.start()
    try:
        # The ADD is half made while its IPAM (exec'd by the worker running the call) sleeps.
        wait_until(lambda: process_running(str(lab.bin_dir / "slow-ipam")) is not None, 60, "the ADD's IPAM runs")
        ipam = process_running(str(lab.bin_dir / "slow-ipam"))
        assert ipam is not None
        worker = int(Path(f"/proc/{ipam}/stat").read_text().rsplit(")", 1)[1].split()[1])
        assert worker in workers(executor), "the IPAM's parent is one of the executor's workers"
        os.kill(worker, signal.SIGKILL)
    finally:
        add.join(timeout=120)

    out = outcome["out"]
    assert out.returncode == 1, out
    error = json.loads(out.stdout)
    assert error["code"] == 11 and "executor exited while running ADD" in error["msg"], error
    assert not link_exists("eth0", netns=ns.name), "the shim undid the half-made ADD"
    assert ip_json("link", "show", "master", lab.bridge) == []

    exited = executor.wait_for("worker_exited", lambda e: e["worker_pid"] == worker, timeout=30)
    assert exited["status"] == "killed by SIGKILL"
    wait_until(lambda: len(executor.events("worker_started")) == 3, 30, "a new worker")
    assert executor.alive() and len(workers(executor)) == 2
    still_serving(lab, executor)


def test_no_worker_outlives_a_killed_executor(executor_factory: Callable[..., RunningExecutor]) -> None:
    executor = executor_factory("--processes", "2", "--no-preload")
    wait_until(lambda: len(workers(executor)) == 2, 60, "two workers")
    pids = workers(executor)
    executor.kill(signal.SIGKILL)
    wait_until(lambda: not any(pid_alive(pid) for pid in pids), 30, "every worker ended")



def _tgkill(pid: int, tid: int, sig: int) -> None:
    """Send ``sig`` to one thread of ``pid``, as the kernel does when it picks that thread for a process's signal."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(234, pid, tid, sig) != 0:  # SYS_tgkill on x86_64
        raise OSError(ctypes.get_errno(), f"tgkill {pid}/{tid}")


def _threads_taking_sigterm(pid: int) -> list[int]:
    """``pid``'s threads other than its main one that do not block SIGTERM."""
    found = []
    for tid in (int(t) for t in os.listdir(f"/proc/{pid}/task")):
        status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        blocked = int(re.search(r"^SigBlk:\s*([0-9a-f]+)", status, re.M).group(1), 16)  # type: ignore[union-attr]
        if tid != pid and not blocked & (1 << (signal.SIGTERM - 1)):
            found.append(tid)
    return found


@pytest.mark.parametrize("where", ["single-process", "supervisor", "worker"])
def test_a_sigterm_any_thread_takes_stops_the_executor(
        lab: CniLab, executor_factory: Callable[..., RunningExecutor], where: str) -> None:
    """The kernel gives a process's signal to any thread that does not block it, and a main thread asleep
    in epoll or waitpid does not wake for one another thread took. Whichever thread takes the SIGTERM
    (an idle connection thread, the supervisor's metrics relay or server), the executor stops and removes its socket."""
    lab.install_pycni("bridge")
    # metrics served: the supervisor runs the relay's and the HTTP server's threads
    metrics = ["--metrics", "127.0.0.1:0"] if where == "supervisor" else []
    executor = executor_factory("--processes", "1" if where == "single-process" else "2", "--no-preload", *metrics)
    assert run_shim(lab, "bridge", shim_env(lab, "VERSION", socket=str(executor.socket)), b"{}").returncode == 0
    if where == "worker":  # the worker that served the call keeps its connection thread for a while
        target = next(pid for pid in workers(executor) if _threads_taking_sigterm(pid))
    else:
        target = executor.pid
    threads = _threads_taking_sigterm(target)
    assert threads, f"{where}: no thread but the main one takes SIGTERM: nothing to test"
    _tgkill(target, threads[0], signal.SIGTERM)
    if where == "worker":  # a worker that stops is replaced; what matters is that it stopped
        wait_until(lambda: not pid_alive(target), 15, f"worker {target} stops")
        return
    executor.proc.wait(timeout=15)
    assert not executor.socket.exists()


def test_metrics_are_relayed_only_when_served(
        lab: CniLab, executor_factory: Callable[..., RunningExecutor]) -> None:
    """Unserved, a worker's counts stay in the worker: the supervisor runs no relay thread and gets no
    datagram per call (three per call cost ~0.25 ms of the executor's CPU each). Served, /metrics counts
    calls whichever worker ran them."""
    lab.install_pycni("bridge")
    quiet = executor_factory("--processes", "2", "--no-preload")
    assert run_shim(lab, "bridge", shim_env(lab, "VERSION", socket=str(quiet.socket)), b"{}").returncode == 0
    assert os.listdir(f"/proc/{quiet.pid}/task") == [str(quiet.pid)], "only the supervisor's main thread"

    served = executor_factory("--processes", "2", "--no-preload", "--metrics", "127.0.0.1:0")
    for _ in range(4):
        assert run_shim(lab, "bridge", shim_env(lab, "VERSION", socket=str(served.socket)), b"{}").returncode == 0
    addr = served.wait_for("metrics_listening")["addr"]
    import urllib.request

    def counted() -> bool:
        with urllib.request.urlopen(f"http://{addr}/metrics", timeout=10) as reply:
            return 'pycni_executor_requests_total{plugin="bridge",command="VERSION"} 4' in reply.read().decode()

    wait_until(counted, 10, "four VERSION calls counted")
