"""The backup file of one attachment's original link attributes (and, pycni's addition, sysctls).

Layout is the reference's, so the Go tuning plugin and pycni can restore
each other's backups: ``<dataDir>/<containerID>_<ifname>.json`` holding
``{"mac", "promisc", "mtu", "allmulti", "txQLen"}`` (only the attributes
the ADD changed). pycni adds one key the reference ignores::

    "pycni": {"network": N, "containerID": C, "ifname": I,
              "sysctl": {"<path>": {"original": "...", "set": "..."}}}

which lets DEL put back sysctls nobody changed since (see plugin.py) and
GC find the backups of one network's stale attachments.

Writes are atomic (temporary file + rename), mode 0600.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Backup", "backup_path", "list_backups", "read_backup", "remove_backup", "write_backup"]


@dataclass
class Backup:
    mac: str = ""
    promisc: bool | None = None
    mtu: int = 0
    allmulti: bool | None = None
    txqlen: int | None = None
    network: str = ""
    container_id: str = ""
    ifname: str = ""
    sysctls: dict[str, tuple[str, str]] = field(default_factory=dict)  # path -> (original, set)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.mac:
            out["mac"] = self.mac
        if self.promisc is not None:
            out["promisc"] = self.promisc
        if self.mtu:
            out["mtu"] = self.mtu
        if self.allmulti is not None:
            out["allmulti"] = self.allmulti
        if self.txqlen is not None:
            out["txQLen"] = self.txqlen
        out["pycni"] = {
            "network": self.network,
            "containerID": self.container_id,
            "ifname": self.ifname,
            "sysctl": {path: {"original": o, "set": s} for path, (o, s) in self.sysctls.items()},
        }
        return out

    @classmethod
    def from_json(cls, data: Any) -> Backup:
        if not isinstance(data, dict):
            raise ValueError("backup is not a JSON object")
        backup = cls()
        if isinstance(data.get("mac"), str):
            backup.mac = data["mac"]
        if isinstance(data.get("promisc"), bool):
            backup.promisc = data["promisc"]
        if isinstance(data.get("mtu"), int) and not isinstance(data.get("mtu"), bool):
            backup.mtu = data["mtu"]
        if isinstance(data.get("allmulti"), bool):
            backup.allmulti = data["allmulti"]
        if isinstance(data.get("txQLen"), int) and not isinstance(data.get("txQLen"), bool):
            backup.txqlen = data["txQLen"]
        ours = data.get("pycni")
        if isinstance(ours, dict):
            backup.network = str(ours.get("network", ""))
            backup.container_id = str(ours.get("containerID", ""))
            backup.ifname = str(ours.get("ifname", ""))
            for path, entry in (ours.get("sysctl") or {}).items():
                if isinstance(entry, dict) and isinstance(entry.get("original"), str):
                    backup.sysctls[path] = (entry["original"], str(entry.get("set", "")))
        return backup


def backup_path(data_dir: str, container_id: str, ifname: str) -> str:
    return os.path.join(data_dir, f"{container_id}_{ifname}.json")


def read_backup(path: str) -> Backup | None:
    """The backup at ``path``; None when there is none or it cannot be read."""
    try:
        with open(path, encoding="utf-8") as f:
            return Backup.from_json(json.load(f))
    except (OSError, ValueError):
        return None


def write_backup(path: str, backup: Backup) -> None:
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(backup.to_json(), f, indent=1)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def remove_backup(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def list_backups(data_dir: str) -> list[tuple[str, Backup]]:
    """Every readable backup in ``data_dir`` (for GC)."""
    try:
        names = sorted(os.listdir(data_dir))
    except OSError:
        return []
    out = []
    for name in names:
        if name.endswith(".json") and not name.startswith("."):
            path = os.path.join(data_dir, name)
            backup = read_backup(path)
            if backup is not None:
                out.append((path, backup))
    return out
