"""collect_bird against a fake bird control socket (no root): sessions, what it originates and exports, and a
bird that answers but refuses route queries (recovering after a restart) or does not answer at all."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from pycni.doctor.collect_bgp import collect_bird

PROTOCOLS = (Path(__file__).resolve().parents[2] / "data" / "bgp" / "show_protocols_all_mesh.txt").read_bytes()
SUBNET = IPv4Network("10.244.1.0/24")
ROUTE = b"1007-Table master4:\n     10.244.1.0/24        blackhole [pod_subnet 12:00:00.000] * (200)\n0000 \n"
Answer = Callable[[str], bytes]


def answers(refuse_routes: bool = False) -> Answer:
    def answer(command: str) -> bytes:
        if command == "show protocols all":
            return PROTOCOLS.partition(b"\n")[2]
        if refuse_routes:
            return b"8001 No valid tables\n"
        return ROUTE

    return answer


@pytest.fixture
def fake_bird(tmp_path: Path) -> Iterator[Callable[[Answer], str]]:
    """Serve a run dir's bird/bird.ctl with ``answer(command)``; yields a function that starts it, returns the
    run dir."""
    servers: list[socket.socket] = []

    def start(answer: Answer) -> str:
        os.makedirs(tmp_path / "bird", exist_ok=True)
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(tmp_path / "bird" / "bird.ctl"))
        server.listen()
        servers.append(server)

        def serve() -> None:
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                with conn:
                    conn.sendall(b"0001 BIRD 2.0.12 ready.\n")
                    command = conn.recv(1024).decode().strip()
                    conn.sendall(answer(command))

        threading.Thread(target=serve, daemon=True).start()
        return str(tmp_path)

    yield start
    for server in servers:
        server.shutdown(socket.SHUT_RDWR)
        server.close()


def test_a_bird_that_answers(fake_bird: Callable[[Answer], str]) -> None:
    view = collect_bird(fake_bird(answers()))
    assert view.error is None and view.pid is None  # no pid file: not started by an agent
    assert [(s.name, s.info) for s in view.sessions] == [("Mesh_192_168_99_2", "Established")]
    assert view.originated == (SUBNET,)
    assert view.exported == {"Mesh_192_168_99_2": (SUBNET,)}
    assert view.refused == ()


def test_route_queries_refused_are_kept_not_fatal(fake_bird: Callable[[Answer], str]) -> None:
    view = collect_bird(fake_bird(answers(refuse_routes=True)))
    assert view.error is None and len(view.sessions) == 1
    assert view.originated is None and view.exported == {}
    assert len(view.refused) == 2 and all("No valid tables" in r for r in view.refused)


def test_no_bird(tmp_path: Path) -> None:
    view = collect_bird(str(tmp_path))
    assert view.pid is None and view.sessions == ()
    assert view.error is not None and "No such file or directory" in view.error
