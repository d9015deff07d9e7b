"""The agent's status file: render and parse are inverses, malformed files are refused, writes are atomic."""

from __future__ import annotations

from ipaddress import IPv4Network
from pathlib import Path

import pytest

from pycni.cluster.status_file import STATUS_FILE, AgentStatus, parse_status, render_status, write_status

STATUS = AgentStatus(pid=4242, node="n1", subnet=IPv4Network("10.244.1.0/24"), backend="vxlan", pod_mtu=1450,
                     last_reconcile=1796342400.5, resync_seconds=5.0)


def test_render_then_parse_gives_the_same_status() -> None:
    assert parse_status(render_status(STATUS)) == STATUS


def test_unknown_fields_are_ignored() -> None:
    text = render_status(STATUS).replace('"backend"', '"future": 1, "backend"')
    assert parse_status(text) == STATUS


@pytest.mark.parametrize("text", ["", "[]", '{"pid": 1}', render_status(STATUS).replace("10.244.1.0/24", "x")])
def test_malformed_files_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_status(text)


def test_write_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    write_status(str(tmp_path), STATUS)
    write_status(str(tmp_path), STATUS)
    assert sorted(p.name for p in tmp_path.iterdir()) == [STATUS_FILE]
    assert parse_status((tmp_path / STATUS_FILE).read_text()) == STATUS
