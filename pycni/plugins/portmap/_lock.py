"""One host-wide lock per portmap backend.

A backend reads the current ruleset, decides, and writes one transaction;
two plugin processes doing that at once could both create a network's
lookup rules, or one could delete the table (it looked empty) just as the
other added to it. flock serialises the read-decide-write steps; it is
released when the file is closed, so a crashed plugin never holds it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

RUN_DIR = "/run/pycni"


@contextmanager
def host_lock(name: str, run_dir: str = RUN_DIR) -> Iterator[None]:
    os.makedirs(run_dir, mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(run_dir, f"{name}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
