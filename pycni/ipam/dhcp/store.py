"""The daemon's leases on disk: one JSON file per client identifier, so a restarted daemon resumes them.

Contract:

- ``save`` replaces the lease's file atomically (write, fsync, rename), so
  a crash leaves the old lease or the new one, never half of either.
- ``load_all`` returns every readable lease; an unreadable file is logged
  and skipped (it cannot be renewed, and must not stop the others).
- ``remove`` forgets a lease; removing one that is not there is fine.
- File names are a hash of the client identifier (any bytes are allowed in it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from pycni.ipam.dhcp.lease import Lease

__all__ = ["DEFAULT_STATE_DIR", "LeaseStore"]

DEFAULT_STATE_DIR = "/var/lib/pycni/dhcp"
log = logging.getLogger("pycni.dhcp")


class LeaseStore:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def _path(self, client_id: bytes) -> Path:
        return self.directory / f"{hashlib.sha256(client_id).hexdigest()[:40]}.json"

    def save(self, lease: Lease) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self._path(lease.client_id)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(lease.to_json(), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def remove(self, client_id: bytes) -> None:
        self._path(client_id).unlink(missing_ok=True)

    def load_all(self) -> list[Lease]:
        leases = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                leases.append(Lease.from_json(json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("skipping unreadable lease file %s: %s", path, exc)
        return leases
