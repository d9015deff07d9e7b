"""pycni.rundir: the run-time directory and the host and per-namespace locks (no root: locks in tmp_path)."""

from __future__ import annotations

import inspect
import os
import threading
import time
from pathlib import Path

from pycni.rundir import DEFAULT_RUN_DIR, host_lock, netns_lock, run_dir


def test_run_dir_defaults_to_run_pycni() -> None:
    assert run_dir({}) == "/run/pycni"
    assert run_dir({"PYCNI_RUN_DIR": "/tmp/x"}) == "/tmp/x"


def test_lock_file_exists_only_while_held(tmp_path: Path) -> None:
    with netns_lock(4026532000, directory=str(tmp_path / "sbr")) as path:
        assert path == str(tmp_path / "sbr" / "netns-4026532000.lock")
        assert os.path.exists(path)
    assert not os.path.exists(path)
    assert (tmp_path / "sbr").stat().st_mode & 0o777 == 0o700


def test_second_holder_waits_and_then_gets_a_fresh_file(tmp_path: Path) -> None:
    order: list[str] = []

    def second() -> None:
        with netns_lock(7, directory=str(tmp_path)):
            order.append("second")

    with netns_lock(7, directory=str(tmp_path)):
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.2)
        order.append("first")
    thread.join(timeout=5)
    assert order == ["first", "second"]
    assert list(tmp_path.iterdir()) == []


def test_different_namespaces_do_not_wait_for_each_other(tmp_path: Path) -> None:
    with netns_lock(1, directory=str(tmp_path)):
        done = threading.Event()

        def other() -> None:
            with netns_lock(2, directory=str(tmp_path)):
                done.set()

        threading.Thread(target=other).start()
        assert done.wait(timeout=5)


def test_host_lock_serialises_holders_and_keeps_its_file(tmp_path: Path) -> None:
    order: list[str] = []

    def second() -> None:
        with host_lock("thing", directory=str(tmp_path / "run")):
            order.append("second")

    with host_lock("thing", directory=str(tmp_path / "run")):
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.2)
        order.append("first")
    thread.join(timeout=5)
    assert order == ["first", "second"]
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["thing.lock"]
    assert (tmp_path / "run").stat().st_mode & 0o777 == 0o700


def test_host_lock_ignores_pycni_run_dir() -> None:
    """A host-wide lock must be one file for every process, whatever its environment."""
    assert inspect.signature(host_lock).parameters["directory"].default == DEFAULT_RUN_DIR


def test_executor_socket_default_is_in_the_run_dir() -> None:
    """protocol.py imports nothing (the shim loads it on every call), so it spells the path out: keep them equal."""
    from pycni.executor import protocol

    assert os.path.join(DEFAULT_RUN_DIR, "executor.sock") == protocol.DEFAULT_SOCKET
