"""pycni's host-local and Debian's Go host-local (1.1.1) sharing one dataDir.

Both run as real processes (the pycni one as ``python -m
pycni.ipam.host_local.plugin``) against a dataDir in tmp_path; IPAM needs no
network namespace, so neither root nor a netns is required. What must hold:
no address is ever handed out twice, each implementation reads the
other's reservation files, ``last_reserved_ip.N`` and lock, and every file
in the directory is in the reference format.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from ipaddress import ip_address, ip_interface
from pathlib import Path
from typing import Any

import pytest

GO_HOST_LOCAL = "/usr/lib/cni/host-local"
REPO_ROOT = Path(__file__).resolve().parents[2]
PYCNI = [sys.executable, "-m", "pycni.ipam.host_local.plugin"]
GO = [GO_HOST_LOCAL]
NETWORK = "sharednet"


@pytest.fixture(autouse=True)
def _go_host_local_present() -> None:
    if os.access(GO_HOST_LOCAL, os.X_OK):
        return
    reason = f"needs Debian's Go host-local at {GO_HOST_LOCAL} (package containernetworking-plugins)"
    if os.environ.get("PYCNI_REQUIRE_KERNEL_TESTS") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


class Runner:
    """Runs either implementation with one config and dataDir."""

    def __init__(self, tmp_path: Path, ranges: list[Any]) -> None:
        self.data_dir = tmp_path / "data"
        self.netns = tmp_path / "netns"  # any existing path: host-local never opens it
        self.netns.write_bytes(b"")
        self.config = {
            "cniVersion": "1.0.0",
            "name": NETWORK,
            "type": "bridge",
            "ipam": {"type": "host-local", "ranges": ranges, "dataDir": str(self.data_dir)},
        }

    def run(self, plugin: list[str], command: str, container_id: str, ifname: str = "eth0") -> tuple[int, Any]:
        return self.run_with_args(plugin, command, container_id, "", ifname)

    def run_with_args(
        self, plugin: list[str], command: str, container_id: str, cni_args: str, ifname: str = "eth0"
    ) -> tuple[int, Any]:
        env = {
            "CNI_ARGS": cni_args,
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(REPO_ROOT),
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": str(self.netns),
            "CNI_IFNAME": ifname,
            "CNI_PATH": "/usr/lib/cni",
        }
        proc = subprocess.run(plugin, input=json.dumps(self.config).encode(), env=env, capture_output=True, timeout=60)
        return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else None

    def add(self, plugin: list[str], container_id: str, ifname: str = "eth0") -> list[str]:
        code, out = self.run(plugin, "ADD", container_id, ifname)
        assert code == 0, out
        return [ip["address"] for ip in out["ips"]]

    @property
    def directory(self) -> Path:
        return self.data_dir / NETWORK

    def reservations(self) -> dict[str, bytes]:
        return {
            p.name: p.read_bytes()
            for p in self.directory.iterdir()
            if p.name not in ("lock",) and not p.name.startswith("last_")
        }


def assert_reference_layout(runner: Runner) -> None:
    """Every file is the lock, a last_reserved_ip.N naming an address, or '<id>\\r\\n<ifname>' named by an address."""
    owner = re.compile(rb"^[A-Za-z0-9][A-Za-z0-9_.\-]*\r\neth[0-9]+$")
    for path in runner.directory.iterdir():
        data = path.read_bytes()
        if path.name == "lock":
            assert data == b""
        elif path.name.startswith("last_reserved_ip."):
            assert path.name.removeprefix("last_reserved_ip.").isdigit()
            assert str(ip_address(data.decode())) == data.decode()
        else:
            assert str(ip_address(path.name)) == path.name
            assert owner.match(data), (path.name, data)


def test_concurrent_adds_never_share_an_address(tmp_path: Path) -> None:
    runner = Runner(tmp_path, [[{"subnet": "10.77.0.0/26"}], [{"subnet": "fd77::/122"}]])
    jobs = [(GO if i % 2 else PYCNI, f"{'go' if i % 2 else 'py'}{i}") for i in range(40)]
    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(lambda job: (job[1], runner.add(*job)), jobs))

    addresses = [addr for _, addrs in results for addr in addrs]
    assert len(addresses) == 80
    assert len(set(addresses)) == 80, "an address was handed out twice"
    files = runner.reservations()
    assert len(files) == 80
    for container_id, addrs in results:
        for addr in addrs:
            assert files[str(ip_interface(addr).ip)] == f"{container_id}\r\neth0".encode()
    assert_reference_layout(runner)

    # Each implementation releases what the other allocated.
    for i, (container_id, _) in enumerate(results):
        assert runner.run(PYCNI if container_id.startswith("go") else GO, "DEL", container_id)[0] == 0, container_id
        if i % 10 == 0:
            assert_reference_layout(runner)
    assert runner.reservations() == {}


def test_round_robin_continues_across_implementations(tmp_path: Path) -> None:
    runner = Runner(tmp_path, [[{"subnet": "10.78.0.0/24"}], [{"subnet": "fd78::/120"}]])
    assert runner.add(PYCNI, "a") == ["10.78.0.2/24", "fd78::2/120"]
    assert runner.add(GO, "b") == ["10.78.0.3/24", "fd78::3/120"]
    assert runner.add(PYCNI, "c") == ["10.78.0.4/24", "fd78::4/120"]
    assert (runner.directory / "last_reserved_ip.0").read_bytes() == b"10.78.0.4"
    assert (runner.directory / "last_reserved_ip.1").read_bytes() == b"fd78::4"

    # Free the lowest addresses: Go must continue after pycni's last_reserved_ip, not refill them.
    assert runner.run(GO, "DEL", "a")[0] == 0
    assert runner.add(GO, "d") == ["10.78.0.5/24", "fd78::5/120"]
    assert runner.run(PYCNI, "DEL", "b")[0] == 0
    assert runner.add(PYCNI, "e") == ["10.78.0.6/24", "fd78::6/120"]
    assert_reference_layout(runner)


def test_check_and_duplicate_detection_see_the_other_implementation(tmp_path: Path) -> None:
    runner = Runner(tmp_path, [[{"subnet": "10.79.0.0/24"}]])
    runner.add(GO, "go1")
    runner.add(PYCNI, "py1")
    assert runner.run(PYCNI, "CHECK", "go1") == (0, None)
    assert runner.run(GO, "CHECK", "py1") == (0, None)

    code, out = runner.run(PYCNI, "ADD", "go1")
    assert code == 1
    assert out["msg"].endswith("10.79.0.2 has been allocated to go1, duplicate allocation is not allowed")
    code, out = runner.run(GO, "ADD", "py1")
    assert code == 1
    assert out["msg"].endswith("10.79.0.3 has been allocated to py1, duplicate allocation is not allowed")

    assert runner.run(GO, "DEL", "py1")[0] == 0
    code, out = runner.run(PYCNI, "CHECK", "py1")
    assert (code, out["msg"]) == (1, "host-local: Failed to find address added by container py1")


def test_go_waits_for_the_pycni_lock(tmp_path: Path) -> None:
    from pycni.ipam.host_local.store import DiskStore

    runner = Runner(tmp_path, [[{"subnet": "10.80.0.0/24"}]])
    store = DiskStore(str(runner.data_dir), NETWORK)
    finished = threading.Event()
    outcome: list[list[str]] = []

    def go_add() -> None:
        outcome.append(runner.add(GO, "waiter"))
        finished.set()

    with store.lock():
        thread = threading.Thread(target=go_add)
        thread.start()
        time.sleep(1.0)
        assert not finished.is_set(), "Go host-local allocated while pycni held the lock"
        assert store.reserve(ip_address("10.80.0.2"), "holder", "eth0", 0)
    thread.join(timeout=30)
    assert outcome == [["10.80.0.3/24"]]  # it saw what was reserved under the lock


def test_lock_file_is_the_one_go_uses(tmp_path: Path) -> None:
    runner = Runner(tmp_path, [[{"subnet": "10.81.0.0/24"}]])
    runner.add(GO, "g")
    fd = os.open(runner.directory / "lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        code: list[int] = []
        thread = threading.Thread(target=lambda: code.append(runner.run(PYCNI, "ADD", "p")[0]))
        thread.start()
        thread.join(timeout=2.0)
        assert thread.is_alive(), "pycni allocated while the lock was held"
    finally:
        os.close(fd)
    thread.join(timeout=30)
    assert code == [0]


def test_ipv6_file_names_agree(tmp_path: Path) -> None:
    # RFC 5952 text decides the file name; a mismatch would let both claim one address.
    runner = Runner(tmp_path, [[{"subnet": "2001:db8::/64"}]])
    spelled = "2001:0db8:0000:0000:0001:0000:0000:0001"
    code, out = runner.run_with_args(GO, "ADD", "go6", f"IP={spelled}")
    assert code == 0, out
    assert sorted(runner.reservations()) == ["2001:db8::1:0:0:1"]
    code, out = runner.run_with_args(PYCNI, "ADD", "py6", f"IP={spelled}")
    assert (code, out["msg"]) == (
        1,
        "failed to allocate for range 0: requested IP address 2001:db8::1:0:0:1 is not available in range set"
        " 2001:db8::1-2001:db8::ffff:ffff:ffff:ffff",
    )
    assert runner.run(PYCNI, "DEL", "go6") == (0, None)
    assert runner.reservations() == {}
