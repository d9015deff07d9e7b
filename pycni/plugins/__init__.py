"""The plugin registry: CNI type name -> module holding its ``PLUGIN``.

Each module defines ``PLUGIN: pycni.skel.Plugin``. The shim installed in
/opt/cni/bin imports only the one module its type names, so a bridge call
never pays for the portmap code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pycni.skel import Plugin

PLUGIN_MODULES: dict[str, str] = {
    # main plugins
    "loopback": "pycni.plugins.loopback",
    "bridge": "pycni.plugins.bridge",
    "ptp": "pycni.plugins.ptp",
    "macvlan": "pycni.plugins.macvlan",
    "ipvlan": "pycni.plugins.ipvlan",
    "vlan": "pycni.plugins.vlan",
    "host-device": "pycni.plugins.host_device",
    "dummy": "pycni.plugins.dummy",
    "tap": "pycni.plugins.tap",
    # meta (chained) plugins
    "portmap": "pycni.plugins.portmap",
    "firewall": "pycni.plugins.firewall",
    "tuning": "pycni.plugins.tuning",
    "bandwidth": "pycni.plugins.bandwidth",
    "sbr": "pycni.plugins.sbr",
    # IPAM
    "host-local": "pycni.ipam.host_local.plugin",
    "static": "pycni.ipam.static",
}


def load_plugin(plugin_type: str) -> Plugin:
    """Import and return the ``skel.Plugin`` of ``plugin_type``."""
    import importlib

    try:
        module_name = PLUGIN_MODULES[plugin_type]
    except KeyError:
        raise LookupError(f"pycni has no plugin of type {plugin_type!r}") from None
    plugin: Plugin = importlib.import_module(module_name).PLUGIN
    return plugin


def run(plugin_type: str) -> None:
    """Entry point used by the installed shims: run one plugin call in-process."""
    from pycni import skel

    skel.main(load_plugin(plugin_type))
