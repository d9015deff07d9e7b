"""bird's control socket: reply framing, ``show protocols all`` parsing against recorded replies of bird 2.0.12.

The recordings under tests/data/bgp/ are raw bytes from the socket (greeting
included): a mesh session up, and the same session after the peer shut down.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycni.cluster.backends.bgp_control import BirdError, query, split_reply
from pycni.cluster.backends.bgp_status import BgpPeerStatus, bgp_peers, parse_protocols, peer_type

DATA = Path(__file__).resolve().parents[2] / "data" / "bgp"


def recorded(name: str) -> str:
    """A recording without its greeting line."""
    return (DATA / name).read_text().split("\n", 1)[1]


def test_split_reply_keeps_continuations_under_their_code() -> None:
    lines, done = split_reply("2002-Name Proto\n1002-device1 Device\n kernel1 Kernel\n0000 \n")
    assert done
    assert lines == [(2002, "Name Proto"), (1002, "device1 Device"), (1002, "kernel1 Kernel"), (0, "")]
    assert split_reply("1002-device1 Device\n") == ([(1002, "device1 Device")], False)


def test_show_protocols_all_mesh_established() -> None:
    lines, done = split_reply(recorded("show_protocols_all_mesh.txt"))
    assert done
    protocols = parse_protocols(lines)
    assert [p.name for p in protocols] == ["device1", "underlay", "pod_subnet", "kernel1", "Mesh_192_168_99_2"]
    assert bgp_peers(protocols) == [
        BgpPeerStatus(name="Mesh_192_168_99_2", address="192.168.99.2", type="node-to-node mesh", state="up",
                      since=1796337232, info="Established", asn="64512", description="node x")]


def test_show_protocols_peer_shut_down() -> None:
    lines, _ = split_reply(recorded("show_protocols_peer_down.txt"))
    [peer] = bgp_peers(parse_protocols(lines))
    assert (peer.address, peer.state, peer.info) == ("192.168.99.1", "start", "Active Received: Administrative "
                                                                              "shutdown")
    assert peer.to_wire() == {"name": "Mesh_192_168_99_1", "peerAddress": "192.168.99.1",
                              "peerType": "node-to-node mesh", "asn": "", "state": "start", "since": 1796337250,
                              "info": "Active Received: Administrative shutdown", "description": ""}


@pytest.mark.parametrize(("name", "kind"), [
    ("Mesh_10_0_0_2", "node-to-node mesh"), ("Global_10_0_0_1", "global"), ("Reflector_10_0_0_3", "route reflector"),
    ("Client_10_0_0_4", "reflector client"), ("dynbgp1", "dynamic"), ("bgp1", "other"), ("Mesh", "other"),
])
def test_peer_type_from_the_name(name: str, kind: str) -> None:
    assert peer_type(name) == kind


@pytest.fixture
def fake_bird() -> Iterator[tuple[str, list[str]]]:
    """A control socket that greets, records the command and answers from a small table."""
    answers = {"show status": "1000-BIRD 2.0.12\n1011-Router ID is 10.0.0.1\n0013 Daemon is up and running\n",
               "configure": "0002-Reading configuration from /x\n0003 Reconfigured\n",
               "bogus": "9001 syntax error, unexpected CF_SYM_UNDEFINED\n"}
    directory = tempfile.mkdtemp(prefix="pycni-bird-")
    path = os.path.join(directory, "bird.ctl")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen()
    seen: list[str] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"0001 BIRD 2.0.12 ready.\n")
                command = conn.recv(1024).decode().strip()
                seen.append(command)
                reply = answers[command]
                for i in range(0, len(reply), 7):  # in pieces, as a slow socket would deliver it
                    conn.sendall(reply[i:i + 7].encode())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path, seen
    server.shutdown(socket.SHUT_RDWR)  # wakes the thread in accept(); close() alone would not
    server.close()
    os.unlink(path)
    os.rmdir(directory)


def test_query_reads_the_whole_reply(fake_bird: tuple[str, list[str]]) -> None:
    path, seen = fake_bird
    assert query(path, "configure") == [(2, "Reading configuration from /x"), (3, "Reconfigured")]
    assert query(path, "show status")[-1] == (13, "Daemon is up and running")
    assert seen == ["configure", "show status"]


def test_query_raises_on_an_error_reply(fake_bird: tuple[str, list[str]]) -> None:
    path, _ = fake_bird
    with pytest.raises(BirdError, match="refused 'bogus': syntax error, unexpected CF_SYM_UNDEFINED"):
        query(path, "bogus")


def test_query_without_a_bird() -> None:
    with pytest.raises(BirdError, match=r"failed to ask bird at '/nonexistent/bird\.ctl' for 'show status'"):
        query("/nonexistent/bird.ctl", "show status")
