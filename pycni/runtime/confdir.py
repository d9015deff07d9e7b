"""Finding network configurations in a configuration directory (spec 2.1, 2.7).

Contract:

- ``conf_files(dir, exts)``: regular files directly in ``dir`` whose
  extension is one of ``exts``, sorted; a missing directory is empty.
- ``load_file(path)``: one file as a NetConfList. ``.conflist`` files are
  lists; ``.conf``/``.json`` files are legacy single-plugin configs promoted
  to one-element lists. A conflist with ``loadOnlyInlinedPlugins`` false also
  gets the plugin objects in ``<dir>/<network name>/*.conf`` (sorted)
  appended after its inline ones.
- ``load_network_conf(dir, name)``: libcni's LoadNetworkConf. Conflists
  first, then single-plugin files; the first with that name wins and a file
  that does not parse aborts the search. Raises NotFound or NoConfigsFound.
- ``load_all(dir)``: what runtimes do to pick networks: every config file in
  lexical order, invalid ones skipped (and reported), the first file with a
  given network name wins.

Errors about a file's content keep their class and code and are prefixed
with the file path.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import TypeVar

from pycni.spec.config import (
    NetConfList,
    PluginConf,
    conflist_from_bytes,
    conflist_from_conf,
    plugin_conf_from_bytes,
)
from pycni.spec.errors import ERRORS_BY_CODE, CniError, InvalidConfig, IOFailure

__all__ = [
    "CONF_EXTENSIONS",
    "NoConfigsFound",
    "NotFound",
    "SkippedConf",
    "conf_files",
    "load_all",
    "load_file",
    "load_network_conf",
    "sibling_plugins",
]

CONF_EXTENSIONS = (".conf", ".conflist", ".json")

_T = TypeVar("_T")


class NotFound(CniError):
    """No configuration in the directory has the requested network name."""

    code = InvalidConfig.code

    def __init__(self, directory: str, name: str) -> None:
        super().__init__(f'no net configuration with name "{name}" in {directory}')
        self.directory = directory
        self.name = name


class NoConfigsFound(CniError):
    """The directory holds no configuration files at all."""

    code = InvalidConfig.code

    def __init__(self, directory: str, name: str = "") -> None:
        wanted = f" (looking for network {name!r})" if name else ""
        super().__init__(f"no net configurations found in {directory}{wanted}")
        self.directory = directory


@dataclass(frozen=True)
class SkippedConf:
    """A file ``load_all`` passed over, and why."""

    path: str
    error: CniError

    @property
    def reason(self) -> str:
        return str(self.error)


def conf_files(directory: str, exts: Sequence[str] = CONF_EXTENSIONS) -> list[str]:
    """Sorted paths of the files in ``directory`` with one of the extensions ``exts``."""
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise IOFailure(f"failed to read config directory {directory}: {exc.strerror or exc}") from exc
    found = [
        entry.path
        for entry in entries
        if _extension(entry.name) in exts and entry.is_file()  # is_file follows symlinks
    ]
    return sorted(found)


def load_file(path: str) -> NetConfList:
    """Load one configuration file; the extension decides list or single-plugin format."""
    if _extension(path) == ".conflist":
        conflist = _parse(path, lambda data: conflist_from_bytes(data, require_plugins=False))
        return _with_siblings(conflist, path)
    plugin = _parse(path, plugin_conf_from_bytes)
    return _located(path, partial(conflist_from_conf, plugin))


def sibling_plugins(directory: str, network: str) -> tuple[PluginConf, ...]:
    """The plugin objects in ``<directory>/<network>/*.conf``, in file-name order."""
    plugin_dir = os.path.join(directory, network)
    return tuple(_parse(path, plugin_conf_from_bytes) for path in conf_files(plugin_dir, (".conf",)))


def load_network_conf(directory: str, name: str) -> NetConfList:
    """The configuration for network ``name`` in ``directory``, as libcni's LoadNetworkConf finds it."""
    lists = conf_files(directory, (".conflist",))
    for path in lists:
        # Sibling plugins are read only for the match: another network's
        # directory has no business failing this lookup.
        conflist = _parse(path, lambda data: conflist_from_bytes(data, require_plugins=False))
        if conflist.name == name:
            return _with_siblings(conflist, path)

    singles = conf_files(directory, (".conf", ".json"))
    if not singles:
        raise NotFound(directory, name) if lists else NoConfigsFound(directory, name)
    for path in singles:
        plugin = _parse(path, plugin_conf_from_bytes)
        if plugin.name == name:
            return _located(path, partial(conflist_from_conf, plugin))
    raise NotFound(directory, name)


def load_all(directory: str) -> tuple[list[NetConfList], list[SkippedConf]]:
    """Every usable network in ``directory`` in lexical file order, plus the files skipped and why.

    The first list is what a runtime would use: its first element is the
    default network. A later file reusing a network name is skipped.
    """
    loaded: list[NetConfList] = []
    skipped: list[SkippedConf] = []
    first_file: dict[str, str] = {}
    for path in conf_files(directory):
        try:
            conflist = load_file(path)
        except CniError as exc:
            skipped.append(SkippedConf(path, exc))
            continue
        if conflist.name in first_file:
            duplicate = InvalidConfig(
                f'duplicate network name "{conflist.name}", first defined in {first_file[conflist.name]}'
            )
            skipped.append(SkippedConf(path, duplicate))
            continue
        first_file[conflist.name] = path
        loaded.append(conflist)
    return loaded, skipped


# --------------------------------------------------------------------------


def _extension(name: str) -> str:
    """Like Go's filepath.Ext: from the last dot of the base name, "" if none."""
    base = os.path.basename(name)
    dot = base.rfind(".")
    return base[dot:] if dot >= 0 else ""


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise IOFailure(f"failed to read {path}: {exc.strerror or exc}") from exc


def _parse(path: str, parse: Callable[[bytes], _T]) -> _T:
    data = _read(path)
    return _located(path, lambda: parse(data))


def _located(path: str, build: Callable[[], _T]) -> _T:
    """Run ``build``; a CniError it raises comes back prefixed with ``path``, same class and code."""
    try:
        return build()
    except CniError as exc:
        msg = f"{path}: {exc.msg}"
        cls = ERRORS_BY_CODE.get(exc.code)
        raise (cls(msg, exc.details) if cls else CniError(msg, exc.details, code=exc.code)) from exc


def _with_siblings(conflist: NetConfList, path: str) -> NetConfList:
    if not conflist.load_only_inlined_plugins:
        extra = sibling_plugins(os.path.dirname(path), conflist.name)
        conflist = replace(conflist, plugins=conflist.plugins + extra)
    if not conflist.plugins:
        raise InvalidConfig(f"{path}: no plugin configs found")
    return conflist
