"""One host-wide lock around the firewall plugin's read-modify-write of shared rules.

ADD, DEL and GC look at the rules first and then change them (isolation
rules are per bridge, the nft table is dropped when empty, GC prunes the
rules of bridges that are gone), so two invocations must not interleave.
flock() locks belong to the open file description, so threads of one
executor process exclude each other as well as separate processes do.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["LOCK_PATH", "host_lock"]

LOCK_PATH = "/run/pycni/firewall.lock"


@contextmanager
def host_lock(path: str = LOCK_PATH) -> Iterator[None]:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
