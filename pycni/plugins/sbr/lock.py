"""The per-namespace lock sbr holds while it changes a container's rules and routes.

The lock file lives in ``$PYCNI_RUN_DIR/sbr`` (default /run/pycni/sbr) and
is named after the namespace's inode, never at the netns path itself.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

__all__ = ["DEFAULT_RUN_DIR", "netns_lock", "run_dir"]

DEFAULT_RUN_DIR = "/run/pycni"


def run_dir(environ: Mapping[str, str]) -> str:
    """pycni's run-time directory: ``PYCNI_RUN_DIR`` (tests point it elsewhere), else /run/pycni."""
    return environ.get("PYCNI_RUN_DIR") or DEFAULT_RUN_DIR


@contextmanager
def netns_lock(lock_dir: str, netns_inode: int) -> Iterator[str]:
    """Hold an exclusive flock on ``<lock_dir>/netns-<inode>.lock``; yields its path.

    The file is unlinked before the lock is released, so lock files never
    pile up (namespaces come and go, and their inode numbers are reused).
    That is safe because the lock counts only on the file currently at the
    path: a waiter that wakes up holding an unlinked file retries.
    """
    os.makedirs(lock_dir, mode=0o700, exist_ok=True)
    path = os.path.join(lock_dir, f"netns-{netns_inode}.lock")
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
