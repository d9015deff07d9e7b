"""The firewall plugin's iptables ADDs and DELs run at once (the host lock held shared) and leave exact rules."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import uuid
from collections.abc import Iterator

import pytest

from pycni import skel
from pycni.plugins import load_plugin
from pycni.plugins.firewall import rules as r

PODS = 8


def _call(command: str, network: str, container_id: str, address: str) -> skel.Outcome:
    conf = {"cniVersion": "1.0.0", "name": network, "type": "firewall", "backend": "iptables",
            "prevResult": {"cniVersion": "1.0.0", "ips": [{"address": f"{address}/24"}]}}
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": "/proc/self/ns/net",
           "CNI_IFNAME": "eth0", "CNI_PATH": "/nonexistent", "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin")}
    return skel.dispatch(load_plugin("firewall"), env, json.dumps(conf).encode())


def _filter_lines() -> list[str]:
    out = subprocess.run(["iptables-save", "-t", "filter"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line.startswith("-A ")]


def _in_parallel(command: str, network: str, pods: list[tuple[str, str]]) -> list[skel.Outcome]:
    outcomes: dict[str, skel.Outcome] = {}
    threads = [threading.Thread(target=lambda cid=cid, ip=ip: outcomes.update({cid: _call(command, network, cid, ip)}))
               for cid, ip in pods]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return [outcomes[cid] for cid, _ in pods]


@pytest.fixture
def pods() -> Iterator[tuple[str, list[tuple[str, str]]]]:
    network = f"fwc{uuid.uuid4().hex[:8]}"
    base = int.from_bytes(os.urandom(1), "big") % 200 + 2
    attachments = [(f"{network}-{i}", f"198.51.100.{(base + i) % 250 + 2}") for i in range(PODS)]
    yield network, attachments
    for cid, ip in attachments:  # whatever happened
        _call("DEL", network, cid, ip)


def test_parallel_adds_and_dels_leave_exactly_each_pods_rules(pods: tuple[str, list[tuple[str, str]]]) -> None:
    network, attachments = pods
    assert all(o.exit_code == 0 for o in _in_parallel("ADD", network, attachments))
    lines = _filter_lines()
    for cid, ip in attachments:
        mine = [line for line in lines if f"/{network}/{cid}/" in line]
        assert len(mine) == 2, (cid, mine)  # replies in, anything out: once each
        assert any(f"-s {ip}/32" in line for line in mine) and any(f"-d {ip}/32" in line for line in mine)
    forward_jumps = [line for line in lines if line.startswith("-A FORWARD") and line.endswith(f"-j {r.CNI_FORWARD}")]
    assert len(forward_jumps) == 1, forward_jumps
    admin_jumps = [line for line in lines if line.startswith(f"-A {r.CNI_FORWARD}") and line.endswith("-j CNI-ADMIN")]
    assert len(admin_jumps) == 1, admin_jumps

    assert all(o.exit_code == 0 for o in _in_parallel("DEL", network, attachments))
    assert [line for line in _filter_lines() if f"/{network}/" in line] == []
