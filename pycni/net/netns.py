"""Network namespaces: open them safely and run code inside them.

Contract:

- A namespace is named by a path (``/run/netns/x``, ``/proc/<pid>/ns/net``)
  or by an open file descriptor the caller owns (``NetnsRef``).
- ``open_netns`` never creates anything (pyroute2's netns helpers default
  to O_CREAT, which turns a DEL against a vanished netns into a new empty
  file): a missing path is ``NetnsNotFound``, a path that is not a network
  namespace is ``NotANetns``.
- ``run_in_netns`` runs a function in a short-lived thread that has
  entered the namespace. setns(CLONE_NEWNET) changes only the calling
  thread, so the caller's namespace never changes, and the thread dies with
  its namespace rather than going back to a pool. The target runs inside a
  ``netlink_session``. Most pycni.net calls (link lookups and changes,
  addresses, routes) open a plain netlink socket per request and need no
  sharing; the pyroute2 handles of the others (tc, vxlan, rules, bridge
  VLANs) are shared for the thread's duration, one per netns.
- ``setns`` is a ctypes call: Python 3.11 has no ``os.setns``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from pycni.net.errors import NetError, NetnsNotFound, NotANetns
from pycni.net.netlink import iproute
from pycni.net.netlink.errors import describe

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~4 ms, with re and enum, of a cold plugin call)
if TYPE_CHECKING:
    from typing import ParamSpec, TypeVar

    P = ParamSpec("P")
    T = TypeVar("T")

__all__ = [
    "CLONE_NEWNET",
    "NetnsRef",
    "current_netns_path",
    "is_netns_path",
    "netlink_session",
    "open_netns",
    "pids_in_netns",
    "run_in_netns",
    "same_netns",
    "setns",
    "stop_netns_processes",
]

NetnsRef = str | os.PathLike[str] | int

CLONE_NEWNET = 0x40000000
NSFS_MAGIC = 0x6E736673
# Kernels before 3.19 kept namespace files on procfs.
PROC_SUPER_MAGIC = 0x9FA0
# ioctl(fd, NS_GET_NSTYPE) == _IO(0xb7, 0x3): which namespace type an nsfs fd is (Linux 4.11+).
NS_GET_NSTYPE = 0xB703

_libc: ctypes.CDLL | None = None


def _get_libc() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def setns(fd: int, nstype: int = CLONE_NEWNET) -> None:
    """Move the calling thread into the namespace ``fd`` refers to (raises OSError)."""
    if _get_libc().setns(fd, nstype) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _fs_magic(fd: int) -> int:
    # struct statfs begins with f_type (a long on every Linux ABI); the rest
    # of the structure is not needed, so a generous buffer avoids modelling it.
    buf = ctypes.create_string_buffer(256)
    if _get_libc().fstatfs(fd, buf) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF


def _check_netns_fd(fd: int, path: str) -> None:
    """Raise NotANetns unless ``fd`` is a network namespace."""
    if _fs_magic(fd) not in (NSFS_MAGIC, PROC_SUPER_MAGIC):
        raise NotANetns(f"failed to open netns '{path}': not a network namespace (not on nsfs)")
    try:
        nstype = fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError as exc:
        if exc.errno in (errno.ENOTTY, errno.EINVAL):
            return  # pre-4.11 kernel: the filesystem check is all we can do
        raise
    if nstype != CLONE_NEWNET:
        raise NotANetns(f"failed to open netns '{path}': not a network namespace")


def open_netns(path: str | os.PathLike[str]) -> int:
    """Open a network namespace read-only and return the fd; never creates the path."""
    spath = os.fspath(path)
    try:
        # O_NONBLOCK: a FIFO planted at the path must not hang us.
        fd = os.open(spath, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except FileNotFoundError as exc:
        raise NetnsNotFound(f"failed to open netns '{spath}': {describe(exc)}", errno=exc.errno) from exc
    except OSError as exc:
        raise NetError(f"failed to open netns '{spath}': {describe(exc)}", errno=exc.errno) from exc
    try:
        _check_netns_fd(fd, spath)
    except OSError as exc:
        os.close(fd)
        raise NetError(f"failed to open netns '{spath}': {describe(exc)}", errno=exc.errno) from exc
    except BaseException:
        os.close(fd)
        raise
    return fd


def is_netns_path(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` exists and is a network namespace."""
    try:
        os.close(open_netns(path))
    except NetError:
        return False
    return True


def current_netns_path() -> str:
    """A path naming the calling thread's netns, valid while this thread lives.

    ``/proc/thread-self`` would resolve to whichever thread opens it, so the
    path spells out this thread's id for use from another thread.
    """
    return f"/proc/{os.getpid()}/task/{threading.get_native_id()}/ns/net"


def _identity(ref: NetnsRef) -> tuple[int, int]:
    try:
        st = os.fstat(ref) if isinstance(ref, int) else os.stat(ref)
    except FileNotFoundError as exc:
        raise NetnsNotFound(f"failed to open netns '{ref}': {describe(exc)}", errno=exc.errno) from exc
    return st.st_dev, st.st_ino


def same_netns(a: NetnsRef, b: NetnsRef) -> bool:
    """True if both refer to the same namespace (same nsfs inode)."""
    return _identity(a) == _identity(b)


def pids_in_netns(ref: NetnsRef) -> list[int]:
    """The processes whose network namespace is ``ref`` (what ``ip netns pids`` lists)."""
    wanted = _identity(ref)
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                st = os.stat(f"/proc/{entry}/ns/net")
            except OSError:  # gone, or a kernel thread's
                continue
            if (st.st_dev, st.st_ino) == wanted:
                pids.append(int(entry))
    return pids


def stop_netns_processes(ref: NetnsRef, timeout: float = 3.0) -> list[int]:
    """SIGTERM every process in the namespace, SIGKILL what is left after ``timeout``; returns their pids.

    Deleting a namespace's name does not end what runs in it: a server started inside lives on,
    unreachable, holding the namespace.
    """
    import signal  # here: it imports enum, which the plugins' cold path does without

    try:
        pids = pids_in_netns(ref)
    except NetnsNotFound:  # no namespace, nothing in it
        return []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while (left := [p for p in pids if os.path.exists(f"/proc/{p}")]) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


def netlink_session() -> AbstractContextManager[None]:
    """Share one pyroute2 handle per netns among the pycni.net calls this thread makes in the block.

    Only calls that go through pyroute2's ``IPRoute`` use it (tc, vxlan,
    rules, bridge creation and VLANs); the hot path's requests open a
    socket each (~20 µs) either way. ``run_in_netns`` already wraps its
    target in one; use it for a batch of such calls in the caller's own
    namespace (each otherwise opens and closes a handle, ~0.8 ms).
    """
    return iproute.session()


def run_in_netns(netns: NetnsRef, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Call ``fn(*args, **kwargs)`` in a fresh thread inside ``netns`` and return its result.

    The function's exception is re-raised here. The calling thread's
    namespace is untouched. ``netns`` is a path (opened with
    ``open_netns``) or an fd that stays owned by the caller.
    """
    fd = netns if isinstance(netns, int) else open_netns(netns)
    outcome: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            try:
                setns(fd)
            except OSError as exc:
                raise NetError(f"failed to enter netns '{netns}': {describe(exc)}", errno=exc.errno) from exc
            with iproute.session():
                outcome.append(fn(*args, **kwargs))
        except BaseException as exc:
            failure.append(exc)

    try:
        thread = threading.Thread(target=target, name="pycni-netns", daemon=True)
        thread.start()
        thread.join()
    finally:
        if not isinstance(netns, int):
            os.close(fd)
    if failure:
        raise failure[0]
    return outcome[0]
