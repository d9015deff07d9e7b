"""Where host-local keeps its reservations: the Store seam, the disk store, a memory fake.

On-disk layout (the Go reference's, verified against Debian's host-local
1.1.1, so both implementations can share one dataDir)::

    <dataDir>/<network>/            directory, mode 0755
        <ip>                        one file per reserved address, named by
                                    the canonical address text (10.1.0.5,
                                    fd00::5); content "<containerID>\\r\\n<ifname>",
                                    no trailing newline; created O_EXCL,
                                    mode 0600 (Go HEAD; 1.1.1 used 0644)
        last_reserved_ip.<N>        the address last reserved from range set N
                                    (text, no newline)
        lock                        empty; flock(LOCK_EX) on it serialises
                                    every process (and thread: each lock()
                                    opens its own descriptor) using the directory

Files holding only ``<containerID>`` were written before the ifname was
recorded; they still count as that container's (for every ifname) when
looking up, releasing and garbage-collecting.

Contract of a ``Store``: ``reserve`` claims an address atomically and
reports False when it is already taken; the other methods read or drop
reservations. Callers hold ``lock()`` around any sequence of calls that
must be consistent (a whole ADD, DEL, CHECK or GC); ``lock`` is not
re-entrant. The attachment-level operations (``find_attachment``,
``release_attachment``, ``collect_garbage``) are written once, on top of
the protocol, so every store answers them the same way.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
from collections.abc import Collection, Iterator
from contextlib import AbstractContextManager, contextmanager
from ipaddress import ip_address

from pycni.spec.errors import IOFailure
from pycni.spec.fields import IPAddress, canonical_ip
from pycni.spec.record import record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~4 ms, with re and enum, of a cold plugin call)
if TYPE_CHECKING:
    from typing import Protocol
else:
    Protocol = object  # Store is a protocol for type checkers; nothing checks it at run time

__all__ = [
    "LAST_RESERVED_PREFIX",
    "LOCK_FILE",
    "DiskStore",
    "MemoryStore",
    "Reservation",
    "Store",
    "collect_garbage",
    "find_attachment",
    "release_attachment",
]

LAST_RESERVED_PREFIX = "last_reserved_ip."
LOCK_FILE = "lock"
_SEPARATOR = "\r\n"  # between container ID and ifname, as Go writes it


@record
class Reservation:
    """One reserved address and its owner. ``ifname`` None: a legacy ID-only reservation."""

    ip: IPAddress
    container_id: str
    ifname: str | None

    def encode(self) -> bytes:
        """The file content Go writes: ID, CR LF, ifname; nothing after."""
        if self.ifname is None:
            return self.container_id.encode()
        return f"{self.container_id}{_SEPARATOR}{self.ifname}".encode()

    @classmethod
    def decode(cls, ip: IPAddress, data: bytes) -> Reservation:
        """Read a file as Go matches it: surrounding whitespace trimmed, then split at the first CR LF."""
        text = data.decode("utf-8", errors="replace").strip()
        container_id, sep, ifname = text.partition(_SEPARATOR)
        return cls(ip, container_id, ifname if sep else None)


class Store(Protocol):
    """The reservations of one network."""

    def lock(self) -> AbstractContextManager[None]:
        """Exclusive access for the duration of the ``with`` block, across processes."""
        ...

    def reserve(self, ip: IPAddress, container_id: str, ifname: str, range_id: int) -> bool:
        """Claim ``ip`` for the attachment and remember it as range set ``range_id``'s last; False if taken."""
        ...

    def last_reserved_ip(self, range_id: int) -> IPAddress | None:
        """The address last reserved from range set ``range_id``, if known and readable."""
        ...

    def release_ip(self, ip: IPAddress) -> None:
        """Drop the reservation of ``ip``; nothing happens when there is none."""
        ...

    def reservations(self) -> tuple[Reservation, ...]:
        """Every reservation, in no particular order."""
        ...


def _matches(res: Reservation, container_id: str, ifname: str) -> bool:
    return res.container_id == container_id.strip() and res.ifname == ifname


def _legacy_match(res: Reservation, container_id: str) -> bool:
    return res.ifname is None and res.container_id == container_id.strip()


def find_attachment(store: Store, container_id: str, ifname: str) -> tuple[IPAddress, ...]:
    """The addresses held by ``(container_id, ifname)``, legacy ID-only reservations included."""
    return tuple(
        res.ip
        for res in store.reservations()
        if _matches(res, container_id, ifname) or _legacy_match(res, container_id)
    )


def release_attachment(store: Store, container_id: str, ifname: str) -> tuple[IPAddress, ...]:
    """Release what ``(container_id, ifname)`` holds; returns the released addresses.

    Like the reference, legacy ID-only reservations are released only when
    the attachment holds no current-format one, so a container's second
    interface does not free a legacy address of its first.
    """
    held = store.reservations()
    doomed = [res.ip for res in held if _matches(res, container_id, ifname)]
    if not doomed:
        doomed = [res.ip for res in held if _legacy_match(res, container_id)]
    for ip in doomed:
        store.release_ip(ip)
    return tuple(doomed)


def collect_garbage(store: Store, valid: Collection[tuple[str, str]]) -> tuple[IPAddress, ...]:
    """Release every reservation whose attachment is not in ``valid``; returns what was released.

    A legacy reservation records no ifname, so it stays while any valid
    attachment has its container ID: releasing a live container's address
    would let another container take it.
    """
    pairs = {(cid.strip(), ifname) for cid, ifname in valid}
    live_ids = {cid for cid, _ in pairs}
    doomed = [
        res.ip
        for res in store.reservations()
        if ((res.container_id, res.ifname) not in pairs if res.ifname is not None else res.container_id not in live_ids)
    ]
    for ip in doomed:
        store.release_ip(ip)
    return tuple(doomed)


# -- the disk store ------------------------------------------------------------


class DiskStore:
    """Reservations as files in ``<data_dir>/<network>``; see the module docstring for the layout.

    Constructing one does no I/O: read-only use (STATUS) leaves no trace,
    and the directory and lock file are created by the first ``lock()``.
    """

    def __init__(self, data_dir: str, network: str) -> None:
        self.directory = os.path.join(data_dir, network)

    @contextmanager
    def lock(self) -> Iterator[None]:
        try:
            os.makedirs(self.directory, mode=0o755, exist_ok=True)
            fd = os.open(os.path.join(self.directory, LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise IOFailure(f"failed to open lock file in '{self.directory}': {exc.strerror}") from exc
        try:
            # flock, like Go's go-filemutex: the lock belongs to this open file and dies with it.
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def reserve(self, ip: IPAddress, container_id: str, ifname: str, range_id: int) -> bool:
        path = self._path(ip)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            return False
        except OSError as exc:
            raise IOFailure(f"failed to reserve address '{ip}': {exc.strerror}") from exc
        try:
            try:
                _write_all(fd, Reservation(ip, container_id.strip(), ifname).encode())
            finally:
                os.close(fd)
            self._write_last_reserved(ip, range_id)
        except OSError as exc:
            # An empty or half-written file would hold the address forever (plugins#498).
            self._unlink(path)
            raise IOFailure(f"failed to reserve address '{ip}': {exc.strerror}") from exc
        return True

    def last_reserved_ip(self, range_id: int) -> IPAddress | None:
        try:
            with open(os.path.join(self.directory, f"{LAST_RESERVED_PREFIX}{range_id}"), "rb") as f:
                text = f.read(64).decode("ascii").strip()
            return canonical_ip(ip_address(text))
        except (OSError, UnicodeDecodeError, ValueError):
            return None  # no round-robin hint this time: allocation starts at the first range

    def release_ip(self, ip: IPAddress) -> None:
        self._unlink(self._path(ip))

    def reservations(self) -> tuple[Reservation, ...]:
        found: list[Reservation] = []
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return ()
        except OSError as exc:
            raise IOFailure(f"failed to list '{self.directory}': {exc.strerror}") from exc
        for entry in entries:
            ip = _ip_from_name(entry.name)
            if ip is None or not entry.is_file(follow_symlinks=False):
                continue  # lock, last_reserved_ip.N, anything else a human left there
            try:
                with open(entry.path, "rb") as f:
                    data = f.read()
            except OSError:
                continue  # released meanwhile, or unreadable: the reference skips it too
            found.append(Reservation.decode(ip, data))
        return tuple(found)

    def _path(self, ip: IPAddress) -> str:
        return os.path.join(self.directory, str(ip))

    def _write_last_reserved(self, ip: IPAddress, range_id: int) -> None:
        # Overwritten in place, then cut to length: O_TRUNC on a file with data makes ext4 (auto_da_alloc)
        # start writing it back at close, ~0.1 ms of CPU and ~0.2 ms of wall time per ADD; this costs ~0.01.
        # Callers hold the lock; a crash between the two steps leaves only a wrong round-robin hint.
        path = os.path.join(self.directory, f"{LAST_RESERVED_PREFIX}{range_id}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            data = str(ip).encode()
            if os.pwrite(fd, data, 0) != len(data):
                raise OSError(errno.EIO, "short write")
            os.ftruncate(fd, len(data))
        finally:
            os.close(fd)

    @staticmethod
    def _unlink(path: str) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise IOFailure(f"failed to remove '{path}': {exc.strerror}") from exc


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _ip_from_name(name: str) -> IPAddress | None:
    try:
        ip = ip_address(name)
    except ValueError:
        return None
    # Only the canonical spelling is a reservation file: that is the only name anyone writes.
    return ip if str(ip) == name else None


# -- the in-memory fake ----------------------------------------------------------


class MemoryStore:
    """A Store in a dict, for unit tests. ``held`` and ``last`` are open for inspection and seeding."""

    def __init__(self) -> None:
        self.held: dict[IPAddress, Reservation] = {}
        self.last: dict[int, IPAddress] = {}
        self._mutex = threading.Lock()

    @contextmanager
    def lock(self) -> Iterator[None]:
        with self._mutex:
            yield

    def reserve(self, ip: IPAddress, container_id: str, ifname: str, range_id: int) -> bool:
        if ip in self.held:
            return False
        self.held[ip] = Reservation(ip, container_id.strip(), ifname)
        self.last[range_id] = ip
        return True

    def last_reserved_ip(self, range_id: int) -> IPAddress | None:
        return self.last.get(range_id)

    def release_ip(self, ip: IPAddress) -> None:
        self.held.pop(ip, None)

    def reservations(self) -> tuple[Reservation, ...]:
        return tuple(self.held.values())
