"""host-local stores: the reference's on-disk bytes, lookups, release, GC, locking, write failures."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from ipaddress import ip_address
from pathlib import Path

import pytest

from pycni.ipam.host_local.store import (
    DiskStore,
    MemoryStore,
    Reservation,
    Store,
    collect_garbage,
    find_attachment,
    release_attachment,
)
from pycni.spec.errors import IOFailure

# Exactly what Debian's Go host-local 1.1.1 left in its dataDir after
# ADD (CNI_CONTAINERID=c1, CNI_IFNAME=eth0) with ranges 10.0.0.0/29 and fd00::/125.
GO_FILES: dict[str, bytes] = {
    "10.0.0.2": b"c1\r\neth0",
    "fd00::2": b"c1\r\neth0",
    "last_reserved_ip.0": b"10.0.0.2",
    "last_reserved_ip.1": b"fd00::2",
    "lock": b"",
}

IP = ip_address


def write_files(directory: Path, files: dict[str, bytes]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (directory / name).write_bytes(data)


def read_files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


# -- byte compatibility ---------------------------------------------------------------


def test_disk_store_writes_what_go_writes(tmp_path: Path) -> None:
    store = DiskStore(str(tmp_path), "net1")
    with store.lock():
        assert store.reserve(IP("10.0.0.2"), "c1", "eth0", 0)
        assert store.reserve(IP("fd00::2"), "c1", "eth0", 1)
    assert read_files(tmp_path / "net1") == GO_FILES


def test_last_reserved_is_rewritten_whole_when_it_gets_shorter(tmp_path: Path) -> None:
    # Written in place and cut to length (no O_TRUNC): a shorter address must not keep the longer one's tail.
    store = DiskStore(str(tmp_path), "net1")
    with store.lock():
        assert store.reserve(IP("10.0.100.200"), "c1", "eth0", 0)
        assert store.reserve(IP("10.0.0.3"), "c2", "eth0", 0)
    assert (tmp_path / "net1" / "last_reserved_ip.0").read_bytes() == b"10.0.0.3"
    assert store.last_reserved_ip(0) == IP("10.0.0.3")


def test_disk_store_file_modes(tmp_path: Path) -> None:
    store = DiskStore(str(tmp_path), "net1")
    with store.lock():
        store.reserve(IP("10.0.0.2"), "c1", "eth0", 0)
    assert stat.S_IMODE((tmp_path / "net1").stat().st_mode) & 0o755 == 0o755  # umask may only remove bits
    assert stat.S_IMODE((tmp_path / "net1" / "10.0.0.2").stat().st_mode) == 0o600  # reference HEAD; 1.1.1 used 0644


def test_disk_store_reads_go_files(tmp_path: Path) -> None:
    write_files(tmp_path / "net1", GO_FILES)
    store = DiskStore(str(tmp_path), "net1")
    assert sorted(store.reservations(), key=lambda r: r.ip.version) == [
        Reservation(IP("10.0.0.2"), "c1", "eth0"),
        Reservation(IP("fd00::2"), "c1", "eth0"),
    ]
    assert store.last_reserved_ip(0) == IP("10.0.0.2")
    assert store.last_reserved_ip(1) == IP("fd00::2")
    assert store.last_reserved_ip(2) is None


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"c1\r\neth0", ("c1", "eth0")),
        (b"c1", ("c1", None)),  # written before ifnames were recorded
        (b"  c1\r\neth0\n", ("c1", "eth0")),  # Go trims surrounding whitespace before matching
        (b"", ("", None)),  # an interrupted write: still holds its address
    ],
)
def test_reservation_decoding(data: bytes, expected: tuple[str, str | None]) -> None:
    res = Reservation.decode(IP("10.0.0.9"), data)
    assert (res.container_id, res.ifname) == expected


def test_only_canonical_address_files_are_reservations(tmp_path: Path) -> None:
    directory = tmp_path / "net1"
    write_files(directory, {**GO_FILES, "010.0.0.3": b"x\r\neth0", "FD00::3": b"y\r\neth0", "notes.txt": b"z"})
    (directory / "10.0.0.4").mkdir()
    assert {r.ip for r in DiskStore(str(tmp_path), "net1").reservations()} == {IP("10.0.0.2"), IP("fd00::2")}


def test_unreadable_last_reserved_means_no_hint(tmp_path: Path) -> None:
    write_files(tmp_path / "net1", {"last_reserved_ip.0": b"garbage"})
    assert DiskStore(str(tmp_path), "net1").last_reserved_ip(0) is None


def test_missing_directory_reads_empty_and_is_not_created(tmp_path: Path) -> None:
    store = DiskStore(str(tmp_path / "absent"), "net1")
    assert store.reservations() == ()
    assert store.last_reserved_ip(0) is None
    assert not (tmp_path / "absent").exists()


def test_lock_creates_directory_and_lock_file(tmp_path: Path) -> None:
    with DiskStore(str(tmp_path / "deep" / "dir"), "net1").lock():
        pass
    assert read_files(tmp_path / "deep" / "dir" / "net1") == {"lock": b""}


# -- failures ------------------------------------------------------------------------------


def test_write_failure_removes_the_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = DiskStore(str(tmp_path), "net1")

    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with store.lock():
        monkeypatch.setattr("pycni.ipam.host_local.store.os.write", full)
        with pytest.raises(IOFailure) as info:
            store.reserve(IP("10.0.0.2"), "c1", "eth0", 0)
    assert info.value.msg == "failed to reserve address '10.0.0.2': No space left on device"
    assert info.value.code == 5
    assert read_files(tmp_path / "net1") == {"lock": b""}


def test_unwritable_directory_is_an_io_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(IOFailure, match="failed to open lock file"), DiskStore(str(blocker), "net1").lock():
        pass


# -- behaviour every store shares ----------------------------------------------------------

StoreFactory = Callable[[Path], Store]
STORES: dict[str, StoreFactory] = {
    "disk": lambda tmp: DiskStore(str(tmp), "net1"),
    "memory": lambda tmp: MemoryStore(),
}


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return STORES[request.param](tmp_path)


def seed_legacy(store: Store, tmp_path: Path, ip: str, container_id: str) -> None:
    if isinstance(store, MemoryStore):
        store.held[IP(ip)] = Reservation(IP(ip), container_id, None)
    else:
        write_files(tmp_path / "net1", {ip: container_id.encode()})


def test_reserve_is_exclusive(store: Store) -> None:
    with store.lock():
        assert store.reserve(IP("10.0.0.2"), "c1", "eth0", 0)
        assert not store.reserve(IP("10.0.0.2"), "c2", "eth0", 0)
        assert store.reserve(IP("10.0.0.3"), "c2", "eth0", 3)
        assert store.last_reserved_ip(0) == IP("10.0.0.2")
        assert store.last_reserved_ip(3) == IP("10.0.0.3")
        assert {r.container_id for r in store.reservations()} == {"c1", "c2"}


def test_find_and_release_by_attachment(store: Store) -> None:
    with store.lock():
        store.reserve(IP("10.0.0.2"), "c1", "eth0", 0)
        store.reserve(IP("fd00::2"), "c1", "eth0", 1)
        store.reserve(IP("10.0.0.3"), "c1", "eth1", 0)
        store.reserve(IP("10.0.0.4"), "c2", "eth0", 0)
        assert set(find_attachment(store, "c1", "eth0")) == {IP("10.0.0.2"), IP("fd00::2")}
        assert set(release_attachment(store, "c1", "eth0")) == {IP("10.0.0.2"), IP("fd00::2")}
        assert find_attachment(store, "c1", "eth0") == ()
        assert release_attachment(store, "c1", "eth0") == ()  # repeated DEL: nothing left, no error
        assert {r.ip for r in store.reservations()} == {IP("10.0.0.3"), IP("10.0.0.4")}
        store.release_ip(IP("10.9.9.9"))  # releasing a free address is a no-op


def test_legacy_reservations(store: Store, tmp_path: Path) -> None:
    seed_legacy(store, tmp_path, "10.0.0.9", "old")
    with store.lock():
        assert find_attachment(store, "old", "eth0") == (IP("10.0.0.9"),)
        assert find_attachment(store, "old", "whatever") == (IP("10.0.0.9"),)
        store.reserve(IP("10.0.0.2"), "old", "eth1", 0)
        # The attachment holds a current-format reservation: the legacy one stays (the reference's rule).
        assert release_attachment(store, "old", "eth1") == (IP("10.0.0.2"),)
        assert release_attachment(store, "old", "eth0") == (IP("10.0.0.9"),)
        assert store.reservations() == ()


def test_garbage_collection(store: Store, tmp_path: Path) -> None:
    seed_legacy(store, tmp_path, "10.0.0.8", "legacy-live")
    seed_legacy(store, tmp_path, "10.0.0.9", "legacy-gone")
    with store.lock():
        store.reserve(IP("10.0.0.2"), "keep", "eth0", 0)
        store.reserve(IP("10.0.0.3"), "keep", "eth1", 0)  # same container, interface not listed
        store.reserve(IP("10.0.0.4"), "gone", "eth0", 0)
        released = collect_garbage(store, [("keep", "eth0"), ("legacy-live", "eth0")])
        assert set(released) == {IP("10.0.0.3"), IP("10.0.0.4"), IP("10.0.0.9")}
        assert {r.ip for r in store.reservations()} == {IP("10.0.0.2"), IP("10.0.0.8")}
        assert store.last_reserved_ip(0) == IP("10.0.0.4")  # bookkeeping is not a reservation
        assert set(collect_garbage(store, [])) == {IP("10.0.0.2"), IP("10.0.0.8")}


def test_disk_gc_keeps_lock_and_last_reserved(tmp_path: Path) -> None:
    write_files(tmp_path / "net1", GO_FILES)
    store = DiskStore(str(tmp_path), "net1")
    with store.lock():
        collect_garbage(store, [])
    assert sorted(os.listdir(tmp_path / "net1")) == ["last_reserved_ip.0", "last_reserved_ip.1", "lock"]


# -- the lock --------------------------------------------------------------------------------

_TRY_LOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    sys.exit(3)
"""


def try_lock_elsewhere(lock_file: Path) -> int:
    return subprocess.run([sys.executable, "-c", _TRY_LOCK, str(lock_file)], check=False).returncode


def test_lock_excludes_other_processes(tmp_path: Path) -> None:
    store = DiskStore(str(tmp_path), "net1")
    lock_file = tmp_path / "net1" / "lock"
    with store.lock():
        assert try_lock_elsewhere(lock_file) == 3
    assert try_lock_elsewhere(lock_file) == 0
