"""The bird supervisor's decisions, without bird: when it configures, when it does not, and retrying a refusal.

A stand-in process carries the config path in its command line (that is how
the supervisor recognises its bird), ``true`` stands in for ``bird -p``, and
a fake control socket answers ``configure`` as bird 2.0.12 does.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycni.cluster.backends.bgp_bird import BirdError, BirdPaths, BirdSupervisor


class FakeBird:
    def __init__(self, paths: BirdPaths) -> None:
        self.commands: list[str] = []
        self.refuse = False
        self.process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", paths.conf])
        Path(paths.pid).write_text(f"{self.process.pid}\n")
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(paths.socket)
        self.server.listen()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"0001 BIRD 2.0.12 ready.\n")
                self.commands.append(conn.recv(1024).decode().strip())
                if self.refuse:
                    conn.sendall(b"0002-Reading configuration from bird.conf\n8002 bird.conf:3:1 syntax error\n")
                else:
                    conn.sendall(b"0002-Reading configuration from bird.conf\n0003 Reconfigured\n")

    def close(self) -> None:
        self.server.shutdown(socket.SHUT_RDWR)  # wakes the thread in accept(); close() alone would not
        self.server.close()
        self.process.kill()
        self.process.wait()


@pytest.fixture
def bird(tmp_path: Path) -> Iterator[tuple[BirdPaths, FakeBird]]:
    paths = BirdPaths(str(tmp_path))
    fake = FakeBird(paths)
    yield paths, fake
    fake.close()


def test_running_bird_is_adopted_and_configured_once(bird: tuple[BirdPaths, FakeBird]) -> None:
    paths, fake = bird
    Path(paths.conf).write_text("router id 10.0.0.1;\n")
    supervisor = BirdSupervisor(paths, bird="true")  # an agent that just restarted
    assert supervisor.pid() == fake.process.pid
    assert supervisor.apply("router id 10.0.0.1;\n") == []  # same text: nothing to report...
    assert fake.commands == ["configure"]  # ...but bird is told once, in case it runs an older file
    assert supervisor.apply("router id 10.0.0.1;\n") == []
    assert fake.commands == ["configure"]
    assert supervisor.apply("router id 10.0.0.2;\n") == [f"bird reconfigured ({paths.conf})"]
    assert fake.commands == ["configure", "configure"]
    assert Path(paths.conf).read_text() == "router id 10.0.0.2;\n"


def test_refused_configure_is_retried(bird: tuple[BirdPaths, FakeBird]) -> None:
    paths, fake = bird
    supervisor = BirdSupervisor(paths, bird="true")
    fake.refuse = True
    with pytest.raises(BirdError, match=r"refused 'configure': Reading configuration from bird\.conf; bird\.conf:3:1"):
        supervisor.apply("router id 10.0.0.3;\n")
    fake.refuse = False
    assert supervisor.apply("router id 10.0.0.3;\n") == []  # the file is in place; bird takes it now
    assert fake.commands == ["configure", "configure"]


def test_config_bird_refuses_never_replaces_the_file(tmp_path: Path) -> None:
    paths = BirdPaths(str(tmp_path))
    Path(paths.conf).write_text("old\n")
    with pytest.raises(BirdError, match="bird refused the rendered config"):
        BirdSupervisor(paths, bird="false").apply("new\n")
    assert Path(paths.conf).read_text() == "old\n"


def test_a_pid_file_of_another_process_is_not_our_bird(tmp_path: Path) -> None:
    paths = BirdPaths(str(tmp_path))
    Path(paths.pid).write_text("1\n")
    assert BirdSupervisor(paths).pid() is None


def test_without_bird_the_message_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(BirdError, match=r"the bgp backend needs bird2 \('/nonexistent/bird' not found; Debian: apt "
                                        r"install bird2\)"):
        BirdSupervisor(BirdPaths(str(tmp_path)), bird="/nonexistent/bird").apply("x\n")
