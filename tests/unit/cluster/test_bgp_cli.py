"""``cluster init --bgp-*`` and ``pycni node status`` (against a fake bird control socket), without root."""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycni.cli.cluster import config_from_args
from pycni.cli.main import build_parser, main
from pycni.cluster.backends.bgp_config import BgpSettings
from pycni.spec.errors import InvalidConfig

DATA = Path(__file__).resolve().parents[2] / "data" / "bgp"


def init_config(*flags: str) -> BgpSettings | None:
    args = build_parser().parse_args(["cluster", "init", "--network", "10.50.0.0/16", *flags])
    return config_from_args(args).backend.bgp


def test_init_flags_fill_the_bgp_fields() -> None:
    settings = init_config("--backend", "bgp", "--bgp-asn", "65010", "--bgp-peer", "10.0.0.1:65000",
                           "--bgp-peer", "10.0.0.2:65000", "--bgp-route-reflectors", "n1, n2")
    assert settings is not None
    assert settings.to_wire() == {"ASN": 65010, "Mesh": False, "RouteReflectors": ["n1", "n2"],
                                  "Peers": [{"IP": "10.0.0.1", "ASN": 65000}, {"IP": "10.0.0.2", "ASN": 65000}]}
    assert init_config("--backend", "bgp") == BgpSettings()
    assert init_config("--backend", "bgp", "--bgp-mesh", "off") == BgpSettings(mesh=False)


def test_bgp_flags_need_the_bgp_backend() -> None:
    with pytest.raises(InvalidConfig, match="--bgp-\\*: only apply to --backend bgp, not vxlan"):
        init_config("--bgp-asn", "65010")


@pytest.fixture
def run_dir() -> Iterator[str]:
    """A run dir whose bird/bird.ctl answers ``show protocols all`` with a recorded reply."""
    recorded = (DATA / "show_protocols_all_mesh.txt").read_bytes()
    directory = tempfile.mkdtemp(prefix="pycni-status-")
    os.mkdir(os.path.join(directory, "bird"))
    path = os.path.join(directory, "bird", "bird.ctl")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen()

    def serve() -> None:
        greeting, _, reply = recorded.partition(b"\n")
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.sendall(greeting + b"\n")
                assert conn.recv(1024) == b"show protocols all\n"
                conn.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()
    yield directory
    server.shutdown(socket.SHUT_RDWR)  # wakes the thread in accept(); close() alone would not
    server.close()
    os.unlink(path)
    os.rmdir(os.path.join(directory, "bird"))
    os.rmdir(directory)


def test_node_status_table(run_dir: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["node", "status", "--run-dir", run_dir])
    assert exit_.value.code == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"bird is running (pid ?, socket {run_dir}/bird/bird.ctl)."
    assert out[2:] == [
        "IPv4 BGP status",
        "PEER ADDRESS  PEER TYPE          STATE  SINCE (UTC)          INFO",
        "192.168.99.2  node-to-node mesh  up     2026-12-03 22:33:52  Established",
    ]


def test_node_status_json(run_dir: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["node", "status", "-o", "json", "--run-dir", run_dir])
    out = json.loads(capsys.readouterr().out)
    assert out["running"] is True
    assert out["peers"] == [{"name": "Mesh_192_168_99_2", "peerAddress": "192.168.99.2",
                             "peerType": "node-to-node mesh", "asn": "64512", "state": "up", "since": 1796337232,
                             "info": "Established", "description": "node x"}]


def test_node_status_without_bird(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["node", "status", "--run-dir", str(tmp_path)])
    assert exit_.value.code == 1
    assert capsys.readouterr().out.startswith(f"bird is not running: failed to ask bird at '{tmp_path}/bird/bird.ctl'")
