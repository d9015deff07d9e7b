"""The runtime library: run a network configuration list against an attachment (spec 1.11, 5.4-5.10).

``CniConfig`` is what libcni's CNIConfig is for Go runtimes. It chains the
plugins of a NetConfList, keeps the result cache (pycni.runtime.cache), and
reports failures as CniErrors that keep the plugin's own code:

- ADD runs plugins in order, each getting the previous one's result as
  ``prevResult``; the final result is cached. A failed ADD is **not** rolled
  back: the runtime must call DEL for the whole list afterwards (the spec
  requires DEL even after a failed ADD, and plugins make partial ADDs
  deletable). The error is a PluginError naming the plugin.
- DEL runs plugins in reverse, all with the cached final result converted to
  the list's version. An unusable cache entry is deleted and DEL goes on
  without prevResult. After success the cache entry is removed.
- CHECK needs list version >= 0.4.0, is skipped with ``disableCheck``, and
  stops at the first plugin error, raised as a PluginError (libcni returns
  it bare; the wrapper keeps its code and details and names the plugin).
- STATUS (>= 1.1.0, else a no-op) returns the first plugin error unwrapped so
  codes 50/51 reach the caller as they are.
- GC (skipped with ``disableGC``) first DELs every cached attachment of the
  network that is not in the valid set, then (list version >= 1.1.0) sends GC
  to every plugin; it keeps going and raises one GcError listing every error.

Every plugin receives the list's negotiated version (spec 1.13) as cniVersion.
The container ID, network name and interface name are validated on ADD only.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pycni.runtime.cache import DEFAULT_CACHE_DIR, CacheEntry, ResultCache
from pycni.runtime.invoke import PluginExec, RawExec
from pycni.spec.args import format_cni_args
from pycni.spec.config import NetConfList, PluginConf, request_config, runtime_config_for
from pycni.spec.errors import CniError, DecodingFailure, IncompatibleVersion, InternalError, InvalidConfig, IOFailure
from pycni.spec.result import Result, convert_result
from pycni.spec.validate import validate_container_id, validate_interface_name, validate_network_name
from pycni.spec.version import CURRENT_VERSION, PluginInfo, version_at_least

__all__ = [
    "Attachment",
    "CachedAttachment",
    "CniConfig",
    "GcError",
    "MultiError",
    "PluginError",
    "RuntimeConf",
    "ValidationError",
    "WrappedError",
]

#: VERSION probes fill the attachment variables with this, as libcni does.
_DUMMY = "dummy"


# --------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class RuntimeConf:
    """One attachment's arguments: container, netns, interface, CNI_ARGS and capability args."""

    container_id: str
    netns: str
    ifname: str
    args: tuple[tuple[str, str], ...] = ()
    #: Offered to plugins as ``runtimeConfig``, filtered by each plugin's ``capabilities``.
    capability_args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Attachment:
    """A (container ID, interface) pair the runtime still considers valid, for GC."""

    container_id: str
    ifname: str

    def to_wire(self) -> dict[str, str]:
        return {"containerID": self.container_id, "ifname": self.ifname}


@dataclass(frozen=True)
class CachedAttachment:
    """An attachment recorded in the cache by a successful ADD."""

    container_id: str
    network: str
    ifname: str
    config: bytes
    netns: str = ""
    cni_args: tuple[tuple[str, str], ...] = ()
    capability_args: Mapping[str, Any] = field(default_factory=dict)

    def runtime_conf(self) -> RuntimeConf:
        """The RuntimeConf to DEL this attachment with the arguments ADD had."""
        return RuntimeConf(self.container_id, self.netns, self.ifname, self.cni_args, dict(self.capability_args))


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


class WrappedError(CniError):
    """An error with context in front of the message; code and details are the cause's."""

    def __init__(self, context: str, cause: CniError) -> None:
        super().__init__(f"{context}: {cause.msg}", cause.details, code=cause.code)
        self.cause = cause


class PluginError(WrappedError):
    """A plugin of the chain failed: ``plugin type="X" name="N" failed (add): <plugin's message>``.

    ``code``, ``details`` and the message tail are the plugin's own, so a
    caller can print exactly what the plugin reported; ``cause`` is the
    plugin's error as received.
    """

    def __init__(self, cause: CniError, *, plugin_type: str, network: str, command: str) -> None:
        super().__init__(f'plugin type="{plugin_type}" name="{network}" failed ({command})', cause)
        self.plugin_type = plugin_type
        self.network = network
        self.command = command


class MultiError(CniError):
    """Several errors from one operation. The code is theirs if they agree, else 999."""

    def __init__(self, summary: str, errors: Sequence[CniError]) -> None:
        codes = {e.code for e in errors}
        code = codes.pop() if len(codes) == 1 else InternalError.code
        super().__init__(f"{summary}: " + "; ".join(str(e) for e in errors), code=code)
        self.errors = list(errors)


class GcError(MultiError):
    """GC could not clean up everything; ``errors`` lists each failure."""


class ValidationError(MultiError):
    """validate_network_list found plugins that are missing or don't support the list's version."""


# --------------------------------------------------------------------------
# The runtime library
# --------------------------------------------------------------------------


class CniConfig:
    """Runs network configuration lists; plugins are looked up in ``path``.

    ``exec`` is the plugin-execution seam (default: real processes);
    ``timeout`` bounds each plugin execution in seconds (None: no limit).
    """

    def __init__(
        self,
        path: Sequence[str],
        *,
        exec: PluginExec | None = None,  # libcni's name for the seam, shadowing the builtin on purpose
        cache_dir: str = DEFAULT_CACHE_DIR,
        timeout: float | None = 60.0,
    ) -> None:
        if isinstance(path, str):  # a str is a Sequence[str] of characters: catch "a:b" early
            raise TypeError("path must be a list of directories, not a string")
        self.path = tuple(path)
        self.exec: PluginExec = exec if exec is not None else RawExec()
        self.cache = ResultCache(cache_dir)
        self.timeout = timeout

    # -- ADD / CHECK / DEL --------------------------------------------------

    def add_network_list(self, netlist: NetConfList, rt: RuntimeConf) -> Result:
        """ADD every plugin in order and cache the final result (spec 5.4)."""
        version = netlist.negotiated_version
        validate_container_id(rt.container_id)
        validate_network_name(netlist.name)
        validate_interface_name(rt.ifname)
        if not netlist.plugins:
            raise InvalidConfig(f'network "{netlist.name}" has no plugins')
        env = self._env("ADD", rt)

        result: Result | None = None
        for plugin in netlist.plugins:
            prev = None if result is None else result.to_wire()
            out = self._run_attachment(netlist, plugin, "add", env, rt, prev)
            try:
                result = _parse_result(out, version)
            except CniError as exc:
                raise PluginError(exc, plugin_type=plugin.type, network=netlist.name, command="add") from exc
        assert result is not None  # the list is non-empty

        entry = CacheEntry(
            network_name=netlist.name,
            container_id=rt.container_id,
            ifname=rt.ifname,
            config=netlist.raw_bytes,
            netns=rt.netns,
            cni_args=rt.args,
            capability_args=dict(rt.capability_args),
            result=result.to_wire(),
        )
        try:
            self.cache.write(entry)
        except OSError as exc:
            # The plugins did their work; the caller must still DEL.
            raise IOFailure(f'failed to set network "{netlist.name}" cached result: {exc.strerror or exc}') from exc
        return result

    def check_network_list(self, netlist: NetConfList, rt: RuntimeConf) -> None:
        """CHECK every plugin in order against the cached result (spec 5.5); the first failure is raised."""
        version = netlist.negotiated_version
        if not version_at_least(version, "0.4.0"):
            raise IncompatibleVersion(f'configuration version "{version}" does not support the CHECK command')
        if netlist.disable_check:
            return
        try:
            prev_result = self._cached_result(netlist, rt)
        except CniError as exc:
            raise WrappedError(f'failed to get network "{netlist.name}" cached result', exc) from exc
        env = self._env("CHECK", rt)
        for plugin in netlist.plugins:
            # libcni returns CHECK errors bare; naming the plugin costs
            # nothing (code and details are kept) and tells the operator where to look.
            self._run_attachment(netlist, plugin, "check", env, rt, prev_result)

    def del_network_list(self, netlist: NetConfList, rt: RuntimeConf) -> None:
        """DEL every plugin in reverse order, then forget the cached result (spec 5.6)."""
        version = netlist.negotiated_version
        prev_result: dict[str, Any] | None = None
        if version_at_least(version, "0.4.0"):
            try:
                prev_result = self._cached_result(netlist, rt)
            except CniError:
                # An unusable cache entry must not block DEL forever (cni#1055):
                # drop it and delete without prevResult, as plugins must cope.
                self._forget(netlist.name, rt)
        env = self._env("DEL", rt)
        for plugin in reversed(netlist.plugins):
            # On failure the cache entry stays, so a retried DEL gets the same prevResult.
            self._run_attachment(netlist, plugin, "delete", env, rt, prev_result)
        self._forget(netlist.name, rt)

    def _run_attachment(
        self,
        netlist: NetConfList,
        plugin: PluginConf,
        command: str,
        env: Mapping[str, str],
        rt: RuntimeConf,
        prev_result: dict[str, Any] | None,
    ) -> bytes:
        """One plugin of an attachment's chain (ADD/CHECK/DEL); its error names the plugin and keeps its code."""
        try:
            stdin = request_config(
                plugin,
                name=netlist.name,
                cni_version=netlist.negotiated_version,
                prev_result=prev_result,
                runtime_config=runtime_config_for(plugin, rt.capability_args),
            )
            return self._run(plugin, stdin, env)
        except CniError as exc:
            raise PluginError(exc, plugin_type=plugin.type, network=netlist.name, command=command) from exc

    # -- GC / STATUS ----------------------------------------------------------

    def gc_network_list(self, netlist: NetConfList, valid_attachments: Sequence[Attachment] | None) -> None:
        """Remove what stale attachments of this network left behind (spec 5.8).

        ``valid_attachments=None`` means none is valid: every cached
        attachment of the network is deleted and plugins get no valid set.
        """
        if netlist.disable_gc:
            return
        errors: list[CniError] = []
        try:
            cached = self.cache.attachments()
        except CniError:
            cached = []  # as libcni: an unlistable cache means nothing to collect
        valid = None if valid_attachments is None else {(a.container_id, a.ifname) for a in valid_attachments}
        for entry in cached:
            if entry.network_name != netlist.name:
                continue
            if valid is not None and (entry.container_id, entry.ifname) in valid:
                continue
            rt = RuntimeConf(entry.container_id, entry.netns, entry.ifname, entry.cni_args, dict(entry.capability_args))
            try:
                self.del_network_list(netlist, rt)
            except CniError as exc:
                context = f"failed to delete stale attachment {entry.container_id} {entry.ifname}"
                errors.append(WrappedError(context, exc))

        version = netlist.negotiated_version
        if version_at_least(version, "1.1.0"):
            extra: dict[str, Any] = {}
            if valid_attachments is not None:
                wire = [a.to_wire() for a in valid_attachments]
                # The spec renamed the key (cni#1103); older plugins read the old one.
                extra = {"cni.dev/valid-attachments": wire, "cni.dev/attachments": wire}
            env = self._env("GC")
            for plugin in netlist.plugins:
                try:
                    stdin = request_config(plugin, name=netlist.name, cni_version=version, extra=extra)
                    self._run(plugin, stdin, env)
                except CniError as exc:
                    errors.append(PluginError(exc, plugin_type=plugin.type, network=netlist.name, command="gc"))
        if errors:
            raise GcError(f'failed to garbage-collect network "{netlist.name}"', errors)

    def get_status_network_list(self, netlist: NetConfList) -> None:
        """Ask every plugin whether it can serve ADD; the first error is raised as the plugin sent it (spec 5.9)."""
        version = netlist.negotiated_version
        if not version_at_least(version, "1.1.0"):
            return
        env = self._env("STATUS")
        for plugin in netlist.plugins:
            self._run(plugin, request_config(plugin, name=netlist.name, cni_version=version), env)

    # -- VERSION / validation -------------------------------------------------

    def validate_network_list(self, netlist: NetConfList) -> list[str]:
        """Check every plugin exists and supports the list's version; return the enabled capabilities (spec 5.10).

        All problems are collected into one ValidationError.
        """
        expected = netlist.negotiated_version or "0.1.0"
        capabilities: set[str] = set()
        errors: list[CniError] = []
        for plugin in netlist.plugins:
            try:
                info = self.get_version_info(plugin.type)
                if not info.supports(expected):
                    msg = f'plugin {plugin.type} does not support config version "{expected}"'
                    errors.append(IncompatibleVersion(msg))
            except CniError as exc:
                errors.append(exc)
            capabilities.update(cap for cap, enabled in plugin.capabilities.items() if enabled)
        if errors:
            raise ValidationError(f'network "{netlist.name}" is not usable', errors)
        return sorted(capabilities)

    def get_version_info(self, plugin_type: str) -> PluginInfo:
        """Ask a plugin which spec versions it supports."""
        path = self.exec.find(plugin_type, self.path)
        env = {
            "CNI_COMMAND": "VERSION",
            "CNI_CONTAINERID": "",
            "CNI_NETNS": _DUMMY,
            "CNI_IFNAME": _DUMMY,
            "CNI_ARGS": "",
            "CNI_PATH": _DUMMY,
        }
        stdin = json.dumps({"cniVersion": CURRENT_VERSION}).encode()
        try:
            out = self.exec.exec_plugin(path, stdin, env, self.timeout)
        except CniError as exc:
            if exc.msg == "unknown CNI_COMMAND: VERSION":
                return PluginInfo("0.1.0", ("0.1.0",))  # a 0.1.0 plugin predates VERSION
            raise
        try:
            data = json.loads(out)
        except ValueError as exc:
            raise DecodingFailure(f"failed to parse the VERSION answer of plugin {plugin_type}: {exc}") from exc
        return PluginInfo.from_wire(data)

    # -- cache queries ----------------------------------------------------------

    def get_network_list_cached_result(self, netlist: NetConfList, rt: RuntimeConf) -> Result | None:
        """The cached ADD result in the list's version, or None if nothing is cached."""
        wire = self._cached_result(netlist, rt)
        return None if wire is None else Result.from_wire(wire, netlist.negotiated_version)

    def get_network_list_cached_config(self, netlist: NetConfList, rt: RuntimeConf) -> tuple[bytes, RuntimeConf] | None:
        """The config bytes ADD ran with, and ``rt`` updated with the cached CNI_ARGS and capability args."""
        entry = self.cache.read(netlist.name, rt.container_id, rt.ifname)
        if entry is None:
            return None
        if entry.legacy:
            raise DecodingFailure(f'cached network "{netlist.name}" config has wrong kind: a result-only legacy entry')
        cached_rt = replace(rt, args=entry.cni_args or rt.args, capability_args=dict(entry.capability_args))
        return entry.config, cached_rt

    def get_cached_attachments(self, container_id: str = "") -> list[CachedAttachment]:
        """Every cached attachment (of one container if ``container_id`` is given), by file name."""
        return [
            CachedAttachment(
                container_id=e.container_id,
                network=e.network_name,
                ifname=e.ifname,
                config=e.config,
                netns=e.netns,
                cni_args=e.cni_args,
                capability_args=dict(e.capability_args),
            )
            for e in self.cache.attachments(container_id)
        ]

    # -- helpers ----------------------------------------------------------------

    def _env(self, command: str, rt: RuntimeConf | None = None) -> dict[str, str]:
        """The CNI_* variables; all are always set, empty where they don't apply (spec 5.3)."""
        return {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": rt.container_id if rt else "",
            "CNI_NETNS": rt.netns if rt else "",
            "CNI_IFNAME": rt.ifname if rt else "",
            "CNI_ARGS": format_cni_args(rt.args) if rt else "",
            "CNI_PATH": os.pathsep.join(self.path),
        }

    def _run(self, plugin: PluginConf, stdin: bytes, env: Mapping[str, str]) -> bytes:
        path = self.exec.find(plugin.type, self.path)
        return self.exec.exec_plugin(path, stdin, env, self.timeout)

    def _cached_result(self, netlist: NetConfList, rt: RuntimeConf) -> dict[str, Any] | None:
        """The cached result as wire JSON in the list's version; raises if the entry is unusable."""
        entry = self.cache.read(netlist.name, rt.container_id, rt.ifname)
        if entry is None or not entry.result:
            return None
        version = netlist.negotiated_version
        return convert_result(dict(entry.result), version, default_version=version)

    def _forget(self, network: str, rt: RuntimeConf) -> None:
        # A leftover entry only means a later GC runs DEL again, which is harmless.
        with contextlib.suppress(OSError):
            self.cache.delete(network, rt.container_id, rt.ifname)


def _parse_result(stdout: bytes, version: str) -> Result:
    """A plugin's ADD output; a result without cniVersion is read as the request's version."""
    try:
        data = json.loads(stdout)
    except ValueError as exc:
        raise DecodingFailure(f"failed to parse the plugin's result: {exc}") from exc
    return Result.from_wire(data, default_version=version)
