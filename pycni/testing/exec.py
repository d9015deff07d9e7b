"""In-memory fakes for the seams, for tests of code built on pycni.

``FakeExec`` implements pycni.runtime.invoke.PluginExec without processes:
each plugin type is a handler function ``(command, stdin_json, env) ->
dict | None`` that may raise a CniError. Every call is recorded for
assertions::

    fake = FakeExec()
    fake.register("bridge", returns_result({"cniVersion": "1.1.0", "ips": [...]}))
    fake.register("tuning", passes_through)
    cni = CniConfig(["/opt/cni/bin"], exec=fake, cache_dir=str(tmp_path))
    cni.add_network_list(netlist, rt)
    assert [c.command for c in fake.calls] == ["ADD", "ADD"]

Behaviour matches RawExec where it matters: a handler's CniError reaches
the caller as it would after a round trip through the error JSON, an
unregistered type is PluginNotFound, and a handler returning ``None`` gives
empty stdout (or, for VERSION, a default answer listing every version).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pycni.runtime.invoke import PluginNotFound
from pycni.spec.errors import CniError
from pycni.spec.version import CURRENT_VERSION, SUPPORTED_VERSIONS

__all__ = ["FakeCall", "FakeExec", "Handler", "passes_through", "returns_result"]

Handler = Callable[[str, dict[str, Any], Mapping[str, str]], Mapping[str, Any] | None]

_FAKE_BIN = "/fake/cni/bin"


@dataclass(frozen=True)
class FakeCall:
    """One recorded plugin execution."""

    plugin_type: str
    command: str
    stdin: dict[str, Any]
    env: dict[str, str]


class FakeExec:
    """A PluginExec whose plugins are Python functions."""

    def __init__(self) -> None:
        self._handlers: dict[str, tuple[Handler, tuple[str, ...]]] = {}
        self.calls: list[FakeCall] = []

    def register(
        self, plugin_type: str, handler: Handler, *, supported_versions: Sequence[str] = SUPPORTED_VERSIONS
    ) -> None:
        """Install plugin ``plugin_type``; ``supported_versions`` is its default VERSION answer."""
        self._handlers[plugin_type] = (handler, tuple(supported_versions))

    def find(self, plugin_type: str, paths: Sequence[str]) -> str:
        if plugin_type not in self._handlers:
            raise PluginNotFound(plugin_type, paths)
        return f"{_FAKE_BIN}/{plugin_type}"

    def exec_plugin(self, path: str, stdin: bytes, env: Mapping[str, str], timeout: float | None) -> bytes:
        plugin_type = os.path.basename(path)
        handler, supported = self._handlers[plugin_type]
        command = env.get("CNI_COMMAND", "")
        request = json.loads(stdin) if stdin else {}
        self.calls.append(FakeCall(plugin_type, command, request, dict(env)))
        try:
            out = handler(command, request, env)
        except CniError as exc:
            # What RawExec would rebuild from the plugin's error JSON.
            raise CniError.from_wire(exc.to_wire()) from exc
        if out is None and command == "VERSION":
            out = {"cniVersion": CURRENT_VERSION, "supportedVersions": list(supported)}
        return b"" if out is None else json.dumps(out).encode()

    def commands(self) -> list[tuple[str, str]]:
        """``(plugin_type, command)`` of every call, in order."""
        return [(c.plugin_type, c.command) for c in self.calls]


def returns_result(result: Mapping[str, Any]) -> Handler:
    """A plugin that answers ADD with ``result`` and succeeds silently otherwise."""

    def handler(command: str, stdin: dict[str, Any], env: Mapping[str, str]) -> Mapping[str, Any] | None:
        return dict(result) if command == "ADD" else None

    return handler


def passes_through(command: str, stdin: dict[str, Any], env: Mapping[str, str]) -> Mapping[str, Any] | None:
    """A chained plugin that changes nothing: ADD returns its prevResult."""
    if command != "ADD":
        return None
    prev = stdin.get("prevResult")
    if prev is None:
        return {"cniVersion": stdin.get("cniVersion", "")}
    return dict(prev)
