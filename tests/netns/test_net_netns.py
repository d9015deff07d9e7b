"""pycni.net.netns against the real kernel: opening, identifying and entering namespaces."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pycni.net.errors import NetnsNotFound, NotANetns
from pycni.net.netns import (
    current_netns_path,
    is_netns_path,
    open_netns,
    pids_in_netns,
    run_in_netns,
    same_netns,
    stop_netns_processes,
)
from pycni.net.sysctl import read_sysctl, write_sysctl
from tests.support.netns import Netns, unique


def _thread_netns() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


def test_open_missing_netns_raises_and_creates_nothing(tmp_path: Path) -> None:
    for path in (tmp_path / "gone", Path("/run/netns") / unique("pycni-missing-")):
        with pytest.raises(NetnsNotFound, match="no such file or directory"):
            open_netns(path)
        assert not path.exists()
        with pytest.raises(NetnsNotFound):
            run_in_netns(str(path), lambda: None)
        assert not path.exists()


def test_open_rejects_what_is_not_a_network_namespace(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("")
    with pytest.raises(NotANetns, match="not a network namespace"):
        open_netns(plain)
    # On nsfs, but a mount namespace: caught by NS_GET_NSTYPE.
    with pytest.raises(NotANetns, match="not a network namespace"):
        open_netns("/proc/self/ns/mnt")
    assert not is_netns_path(plain)
    assert not is_netns_path(tmp_path / "missing")


def test_open_and_identify_a_netns(ctrns: Netns) -> None:
    fd = open_netns(ctrns.path)
    try:
        assert same_netns(fd, ctrns.path)
    finally:
        os.close(fd)
    assert is_netns_path(ctrns.path)
    assert is_netns_path("/proc/self/ns/net")
    assert not same_netns(ctrns.path, "/proc/self/ns/net")
    assert same_netns(current_netns_path(), "/proc/self/ns/net")


def test_run_in_netns_leaves_the_caller_where_it_was(ctrns: Netns) -> None:
    before = _thread_netns()
    inside = run_in_netns(ctrns.path, _thread_netns)
    assert inside == os.stat(ctrns.path).st_ino
    assert inside != before
    assert _thread_netns() == before


def test_run_in_netns_reraises_and_still_leaves_the_caller(ctrns: Netns) -> None:
    before = _thread_netns()

    def boom(x: int) -> None:
        raise ValueError(f"boom {x}")

    with pytest.raises(ValueError, match="boom 3"):
        run_in_netns(ctrns.path, boom, 3)
    assert _thread_netns() == before


def test_run_in_netns_accepts_an_fd_and_a_thread_path(ctrns: Netns) -> None:
    fd = open_netns(ctrns.path)
    try:
        assert run_in_netns(fd, _thread_netns) == os.stat(ctrns.path).st_ino
    finally:
        os.close(fd)

    # current_netns_path names *this* thread's netns, even from another thread.
    def back_home(path: str) -> int:
        return run_in_netns(path, _thread_netns)

    assert run_in_netns(ctrns.path, back_home, current_netns_path()) == _thread_netns()


def test_run_in_netns_from_several_threads_at_once(make_netns: type) -> None:
    spaces = [make_netns() for _ in range(4)]
    seen: dict[str, int] = {}

    def work(ns: Netns) -> None:
        for _ in range(5):
            seen[ns.name] = run_in_netns(ns.path, _thread_netns)

    threads = [threading.Thread(target=work, args=(ns,)) for ns in spaces]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {ns.name: os.stat(ns.path).st_ino for ns in spaces}


def test_sysctl_in_netns_does_not_touch_the_host(ctrns: Netns) -> None:
    host_before = read_sysctl("net.ipv4.ip_forward")
    # A new netns may inherit the host's value: flip whatever it has.
    wanted = "0" if ctrns.call(read_sysctl, "net.ipv4.ip_forward") == "1" else "1"
    ctrns.call(write_sysctl, "net.ipv4.ip_forward", wanted)
    assert ctrns.call(read_sysctl, "net.ipv4.ip_forward") == wanted
    assert ctrns.run("cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == wanted
    assert read_sysctl("net.ipv4.ip_forward") == host_before


def test_processes_in_a_namespace_are_found_and_stopped(make_netns: Callable[[], Netns]) -> None:
    # What `pycni lab down` relies on: a server started with `lab exec ... &` must not outlive its pod.
    ns = make_netns()
    stubborn = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
                "time.sleep(300)")
    procs = [subprocess.Popen(["ip", "netns", "exec", ns.name, "sleep", "300"]),
             subprocess.Popen(["ip", "netns", "exec", ns.name, sys.executable, "-c", stubborn],
                              stdout=subprocess.PIPE, text=True)]  # the second: only SIGKILL ends it
    try:
        assert procs[1].stdout is not None and procs[1].stdout.readline() == "ready\n"
        deadline = time.monotonic() + 5
        started = {p.pid for p in procs}
        while not started <= set(pids_in_netns(ns.path)) and time.monotonic() < deadline:
            time.sleep(0.02)  # until `ip netns exec` has entered and exec'd
        assert sorted(pids_in_netns(ns.path)) == sorted(started)
        assert sorted(stop_netns_processes(ns.path, timeout=0.5)) == sorted(started)
        assert [p.wait(timeout=5) for p in procs] == [-signal.SIGTERM, -signal.SIGKILL]
        assert pids_in_netns(ns.path) == []
    finally:
        for proc in procs:
            proc.kill()
            proc.communicate()  # reaps it and closes its pipe
    assert stop_netns_processes("/run/netns/" + unique("pycni-missing-")) == []
