"""pycni's run-time directory and the locks kept in it.

Low layer: standard library only, so every layer may use it.

- ``DEFAULT_RUN_DIR`` (/run/pycni): the executor's socket and pid file,
  the agent's subnet.env, and the host locks below live here.
- ``run_dir(environ)``: ``PYCNI_RUN_DIR`` when set (tests point it
  elsewhere), else ``DEFAULT_RUN_DIR``. For state that belongs to one
  caller (sbr's per-namespace locks), so it follows the caller's environment.
- ``host_lock(name)``: an exclusive flock on ``<directory>/<name>.lock``
  around a read-modify-write of state shared by the whole host (a plugin's
  nftables table, iptables chains). The directory is ``DEFAULT_RUN_DIR``
  whatever the environment: a host lock is only a lock if every process on
  the host opens the same file.
- ``netns_lock(inode, directory=...)``: an exclusive flock per network
  namespace, named after its inode (never a file at the netns path), and
  unlinked when released.

flock() locks belong to the open file description, so threads of one
executor process exclude each other as well as separate processes do, and
a crashed holder never keeps a lock (closing the file releases it). The
same process taking one lock twice (two opens) waits for itself: hold a
lock around a whole command, never nested.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

__all__ = ["DEFAULT_RUN_DIR", "host_lock", "netns_lock", "run_dir"]

DEFAULT_RUN_DIR = "/run/pycni"


def run_dir(environ: Mapping[str, str]) -> str:
    """pycni's run-time directory for this caller: ``PYCNI_RUN_DIR``, else /run/pycni."""
    return environ.get("PYCNI_RUN_DIR") or DEFAULT_RUN_DIR


@contextmanager
def host_lock(name: str, *, directory: str = DEFAULT_RUN_DIR, shared: bool = False) -> Iterator[None]:
    """Hold a flock on ``<directory>/<name>.lock``, exclusive unless ``shared`` (the file stays: others wait on it)."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(directory, f"{name}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextmanager
def netns_lock(inode: int, *, directory: str) -> Iterator[str]:
    """Hold an exclusive flock on ``<directory>/netns-<inode>.lock``; yields its path.

    The file is unlinked before the lock is released, so lock files never
    pile up (namespaces come and go, and their inode numbers are reused).
    That is safe because the lock counts only on the file currently at the
    path: a waiter that wakes up holding an unlinked file retries.
    """
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, f"netns-{inode}.lock")
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            current = os.stat(path)
        except FileNotFoundError:
            os.close(fd)
            continue
        except BaseException:
            os.close(fd)
            raise
        if current.st_ino == os.fstat(fd).st_ino:
            break
        os.close(fd)
    try:
        yield path
    finally:
        try:
            os.unlink(path)
        finally:
            os.close(fd)
