"""The plugin registry: CNI type name -> the module that implements it, and what the plugin tells before it runs.

``PLUGINS`` is the one table of pycni's plugin types. An entry names the
module that holds the handlers (``cmd_add``, ``cmd_del``, ``cmd_check``,
and ``cmd_status`` / ``cmd_gc`` where the entry says so), the about text
of a bare invocation, and the spec versions VERSION reports.

- ``load_plugin(type)`` builds the ``skel.Plugin`` from the entry alone:
  each handler imports the module on its first call. VERSION, a bare run
  and looking a type up cost only skel, and a plugin module is free to
  import what it uses at its top.
- ``plugin_info(type, request)`` is VERSION's answer from the entry alone:
  it needs neither skel nor the plugin, so the in-process path answers
  VERSION after importing this module and ``spec.version_info`` only.
- ``import_plugin(type)`` imports that module now (the executor warms
  every plugin; a caller that must know a plugin loads before it commits
  to running it in-process).

Layer: below ipam and plugins, above skel and spec (it imports only
those, skel when a Plugin is first built): ipam's delegation and the
plugin entry points look types up here. The table names modules as
strings, so it imports no plugin.
"""

from __future__ import annotations

import sys

from pycni.spec import version_info
from pycni.spec.version_info import SUPPORTED_VERSIONS

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~3 ms on the cold path)
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType
    from typing import Any

    from pycni.skel import CmdArgs, Plugin

__all__ = ["PLUGINS", "Registration", "import_plugin", "load_plugin", "plugin_info", "registration"]


def _from(version: str) -> tuple[str, ...]:
    return SUPPORTED_VERSIONS[SUPPORTED_VERSIONS.index(version) :]


class Registration:
    """One plugin type: where its handlers are and what it says before running any.

    Read-only by convention. Not a dataclass: VERSION reads this table on the
    cold path, where importing dataclasses (and inspect, ast, re behind it)
    would cost more than the rest of the answer.
    """

    __slots__ = ("about", "gc", "module", "status", "versions")

    def __init__(self, module: str, about: str, *, status: bool = True, gc: bool = True,
                 versions: tuple[str, ...] = SUPPORTED_VERSIONS) -> None:
        self.module = module  # imported on the first call of a handler
        self.about = about  # printed on stderr when run without CNI_COMMAND
        self.status = status  # the module has cmd_status (else STATUS succeeds without it)
        self.gc = gc  # the module has cmd_gc (else GC succeeds without it)
        self.versions = versions

    def __repr__(self) -> str:
        return f"Registration({self.module!r}, status={self.status}, gc={self.gc}, versions={self.versions})"


PLUGINS: dict[str, Registration] = {
    # main plugins
    "loopback": Registration(
        "pycni.plugins.loopback", "pycni loopback plugin: sets lo up in the container", status=False, gc=False
    ),
    "bridge": Registration(
        "pycni.plugins.bridge.plugin", "pycni bridge: containers on a Linux bridge through veth pairs"
    ),
    "ptp": Registration(
        "pycni.plugins.ptp", "pycni ptp: a veth pair routed point-to-point between host and container"
    ),
    "macvlan": Registration(
        "pycni.plugins.macvlan", "pycni macvlan: a macvlan sub-interface of a host link in the container"
    ),
    "ipvlan": Registration(
        "pycni.plugins.ipvlan", "pycni ipvlan: an ipvlan sub-interface of a host link in the container"
    ),
    "vlan": Registration(
        "pycni.plugins.vlan", "pycni vlan: an 802.1q VLAN sub-interface of a host link in the container"
    ),
    "host-device": Registration(
        "pycni.plugins.host_device", "pycni host-device: lend an existing host network device to the container"
    ),
    "dummy": Registration("pycni.plugins.dummy", "pycni dummy: a dummy link in the container, addressed by IPAM"),
    "tap": Registration("pycni.plugins.tap", "pycni tap: a persistent tap device in the container"),
    # meta (chained) plugins
    "portmap": Registration(
        "pycni.plugins.portmap.plugin",
        "pycni portmap: forward host ports to containers (nftables or iptables)",
        status=False,
    ),
    "firewall": Registration(
        "pycni.plugins.firewall.plugin",
        "pycni firewall: lets a pod's addresses through the host's forwarding filter (iptables or nftables)",
        status=False,
        versions=_from("0.4.0"),  # as the reference
    ),
    "tuning": Registration(
        "pycni.plugins.tuning.plugin",
        "pycni tuning: sysctls, MAC, MTU, promisc, allmulti and txQLen of a pod's interface",
        status=False,
    ),
    "bandwidth": Registration(
        "pycni.plugins.bandwidth.plugin",
        "pycni bandwidth: ingress/egress rate limits with tbf qdiscs (and an ifb for egress)",
        status=False,
        versions=_from("0.3.0"),  # as the reference
    ),
    "sbr": Registration(
        "pycni.plugins.sbr.plugin",
        "pycni sbr: source-based routing (a rule and a routing table per container address)",
        status=False,
        gc=False,
    ),
    "netpol": Registration(
        "pycni.plugins.netpol",
        "pycni netpol: register the pod with the node's policy agent and wait until its policy is enforced",
        gc=False,
    ),
    # IPAM
    "host-local": Registration("pycni.ipam.host_local.plugin", "pycni host-local IPAM plugin"),
    "static": Registration("pycni.ipam.static", "pycni static IPAM plugin", status=False, gc=False),
    "dhcp": Registration("pycni.ipam.dhcp.plugin", "pycni dhcp IPAM plugin (and 'dhcp daemon')"),
}


def registration(plugin_type: str) -> Registration:
    """The entry of ``plugin_type``; LookupError when pycni has no such plugin."""
    try:
        return PLUGINS[plugin_type]
    except KeyError:
        raise LookupError(f"pycni has no plugin of type {plugin_type!r}") from None


def plugin_info(plugin_type: str, request: bytes) -> bytes:
    """What ``plugin_type`` prints for VERSION given its stdin (LookupError when unknown); as ``skel.dispatch``."""
    return version_info.plugin_info(registration(plugin_type).versions, request)


def import_plugin(plugin_type: str) -> ModuleType:
    """Import the module that implements ``plugin_type`` (LookupError, or the import's own error)."""
    return _import_module(registration(plugin_type).module)


def _lazy(module: str, function: str) -> Callable[[CmdArgs], Any]:
    """``module.function``, imported when the handler is first called."""

    def handler(args: CmdArgs) -> Any:
        return getattr(_import_module(module), function)(args)

    handler.__name__ = handler.__qualname__ = function
    return handler


_loaded: dict[str, Plugin] = {}


def load_plugin(plugin_type: str) -> Plugin:
    """The ``skel.Plugin`` of ``plugin_type`` (LookupError when unknown); nothing of the plugin is imported yet."""
    plugin = _loaded.get(plugin_type)
    if plugin is None:
        from pycni.skel import Plugin

        entry = registration(plugin_type)
        plugin = Plugin(
            name=plugin_type,
            add=_lazy(entry.module, "cmd_add"),
            delete=_lazy(entry.module, "cmd_del"),
            check=_lazy(entry.module, "cmd_check"),
            status=_lazy(entry.module, "cmd_status") if entry.status else None,
            gc=_lazy(entry.module, "cmd_gc") if entry.gc else None,
            versions=entry.versions,
            about=entry.about,
        )
        _loaded[plugin_type] = plugin
    return plugin


def _import_module(name: str) -> ModuleType:
    """``importlib.import_module`` for an absolute name, without importing importlib (and warnings) on the cold path."""
    __import__(name)
    return sys.modules[name]
