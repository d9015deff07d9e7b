"""The result/attachment cache, in libcni's exact on-disk layout.

Go runtimes and pycni can share one cache directory, so the layout is a
compatibility contract (spec 5.7)::

    <cache_dir>/results/                                  directory, mode 0700
    <cache_dir>/results/<network>-<containerID>-<ifname>  one file per attachment, mode 0600

Each file is one compact JSON object, keys in this order::

    {"kind": "cniCacheV1",
     "containerId": "...", "config": "<base64 of the conflist bytes>",
     "ifName": "eth0", "networkName": "...",
     "netns": "...",                 # omitted when empty
     "cniArgs": [["K", "V"], ...],   # omitted when empty
     "capabilityArgs": {...},        # omitted when empty
     "result": {...}}                # the final ADD result as emitted; omitted when none

``config`` is base64 because that is how Go encodes a byte slice in JSON.
Files written by libcni before v0.8 hold just the bare result JSON; they
are read back as entries with ``legacy=True`` and only a result.

Writes are atomic (a hidden temporary file in the same directory, fsync,
rename), so a crash leaves the old file or the new one, never the empty
files that blocked DEL in cni#1055. Reads tell three cases apart: no file
(``None``), a good entry, and a file that exists but cannot be used
(``CorruptCacheEntry``) so that DEL can delete it and carry on while CHECK
reports it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pycni.spec.errors import DecodingFailure, InvalidEnvironment, IOFailure

__all__ = ["CACHE_KIND", "DEFAULT_CACHE_DIR", "CacheEntry", "CorruptCacheEntry", "ResultCache"]

CACHE_KIND = "cniCacheV1"
DEFAULT_CACHE_DIR = "/var/lib/cni"


class CorruptCacheEntry(DecodingFailure):
    """A cache file exists but cannot be used (empty, not JSON, wrong shape, unreadable)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cache file {path} is unusable: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class CacheEntry:
    """One cached attachment: what ADD was run with, and what it returned."""

    network_name: str
    container_id: str
    ifname: str
    config: bytes = b""
    netns: str = ""
    cni_args: tuple[tuple[str, str], ...] = ()
    capability_args: Mapping[str, Any] = field(default_factory=dict)
    result: Mapping[str, Any] | None = None
    #: Read from a pre-cniCacheV1 file: only ``result`` is meaningful.
    legacy: bool = False

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": CACHE_KIND,
            "containerId": self.container_id,
            "config": base64.b64encode(self.config).decode("ascii"),
            "ifName": self.ifname,
            "networkName": self.network_name,
        }
        if self.netns:
            out["netns"] = self.netns
        if self.cni_args:
            out["cniArgs"] = [[key, value] for key, value in self.cni_args]
        if self.capability_args:
            out["capabilityArgs"] = dict(self.capability_args)
        if self.result:
            out["result"] = dict(self.result)
        return out

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> CacheEntry:
        """Decode a ``cniCacheV1`` object; ValueError names the bad field."""
        if data.get("kind") != CACHE_KIND:
            raise ValueError(f"kind: expected {CACHE_KIND!r}, got {data.get('kind')!r}")
        return cls(
            network_name=_str_field(data, "networkName"),
            container_id=_str_field(data, "containerId"),
            ifname=_str_field(data, "ifName"),
            config=_config_field(data),
            netns=_str_field(data, "netns"),
            cni_args=_args_field(data),
            capability_args=_object_field(data, "capabilityArgs") or {},
            result=_object_field(data, "result"),
        )


class ResultCache:
    """The cache files under one cache directory (default /var/lib/cni)."""

    def __init__(self, cache_dir: str = DEFAULT_CACHE_DIR) -> None:
        self.cache_dir = cache_dir or DEFAULT_CACHE_DIR

    @property
    def results_dir(self) -> str:
        return os.path.join(self.cache_dir, "results")

    def path_for(self, network: str, container_id: str, ifname: str) -> str:
        """``<cache_dir>/results/<network>-<containerID>-<ifname>``; all three parts are required."""
        if not (network and container_id and ifname):
            raise InvalidEnvironment(
                "cache file path requires network name, container ID and interface name",
                f"network={network!r} containerID={container_id!r} ifname={ifname!r}",
            )
        name = f"{network}-{container_id}-{ifname}"
        # ADD validates all three, but DEL and GC do not: never let a "/" walk out of the directory.
        if "/" in name or "\0" in name:
            raise InvalidEnvironment("cache file name would contain '/' or NUL", name)
        return os.path.join(self.results_dir, name)

    def write(self, entry: CacheEntry) -> str:
        """Atomically write ``entry``; returns the file path. Raises OSError."""
        path = self.path_for(entry.network_name, entry.container_id, entry.ifname)
        data = json.dumps(entry.to_wire(), separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        os.makedirs(self.results_dir, mode=0o700, exist_ok=True)
        # The leading dot keeps a temp file a crash left behind out of attachments().
        fd, tmp = tempfile.mkstemp(dir=self.results_dir, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:  # mkstemp creates it 0600
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(self.results_dir)
        return path

    def read(self, network: str, container_id: str, ifname: str) -> CacheEntry | None:
        """The entry, ``None`` when there is no file, CorruptCacheEntry when it is unusable."""
        path = self.path_for(network, container_id, ifname)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CorruptCacheEntry(path, f"cannot read it: {exc.strerror or exc}") from exc
        return _decode(path, data, network, container_id, ifname)

    def delete(self, network: str, container_id: str, ifname: str) -> bool:
        """Remove the entry; True if a file was removed. A missing file is not an error."""
        try:
            path = self.path_for(network, container_id, ifname)
        except InvalidEnvironment:
            return False  # such a file can never have been written
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        return True

    def attachments(self, container_id: str = "") -> list[CacheEntry]:
        """Every usable ``cniCacheV1`` entry, sorted by file name (libcni's GetCachedAttachments).

        With ``container_id``, only entries whose file name contains
        ``-<id>-`` (not at the start) and whose stored containerId matches.
        Unreadable, legacy and incomplete (no ifName or networkName) files
        are skipped, as are hidden temporary files.
        """
        try:
            names = sorted(os.listdir(self.results_dir))
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise IOFailure(f"failed to list cache directory {self.results_dir}: {exc.strerror or exc}") from exc

        entries: list[CacheEntry] = []
        for name in names:
            if name.startswith("."):
                continue
            if container_id:
                part = f"-{container_id}-"
                pos = name.find(part)
                if pos <= 0 or pos + len(part) >= len(name):
                    continue
            entry = self._read_v1(os.path.join(self.results_dir, name))
            if entry is None:
                continue
            if container_id and entry.container_id != container_id:
                continue
            if not entry.ifname or not entry.network_name:
                continue
            entries.append(entry)
        return entries

    @staticmethod
    def _read_v1(path: str) -> CacheEntry | None:
        try:
            with open(path, "rb") as f:
                doc = json.loads(f.read())
            return CacheEntry.from_wire(doc) if isinstance(doc, dict) else None
        except (OSError, ValueError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            return None


def _decode(path: str, data: bytes, network: str, container_id: str, ifname: str) -> CacheEntry:
    if not data.strip():
        raise CorruptCacheEntry(path, "the file is empty")
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise CorruptCacheEntry(path, f"not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise CorruptCacheEntry(path, "not a JSON object")
    if "kind" not in doc:
        # Pre-v0.8 libcni: the file is the bare result.
        return CacheEntry(network, container_id, ifname, result=doc, legacy=True)
    try:
        return CacheEntry.from_wire(doc)
    except ValueError as exc:
        raise CorruptCacheEntry(path, str(exc)) from exc


def _fsync_dir(directory: str) -> None:
    # Makes the rename durable; best effort (some filesystems refuse O_RDONLY dir fsync).
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _str_field(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{key}: expected a string")
    return value


def _config_field(data: Mapping[str, Any]) -> bytes:
    value = data.get("config")
    if value is None:
        return b""
    if not isinstance(value, str):
        raise ValueError("config: expected a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"config: not valid base64: {exc}") from exc


def _args_field(data: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    value = data.get("cniArgs")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError("cniArgs: expected a list of [key, value] pairs")
    pairs: list[tuple[str, str]] = []
    for i, pair in enumerate(value):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
            raise ValueError(f"cniArgs[{i}]: expected a [key, value] pair of strings")
        pairs.append((pair[0], pair[1]))
    return tuple(pairs)


def _object_field(data: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"{key}: expected an object")
    return value
