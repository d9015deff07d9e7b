"""pycni's plugins: one small module (or subpackage) per CNI type.

Which module implements which type is ``pycni.registry.PLUGINS``, the one
table of plugin types; this package re-exports its lookups for the callers
that start here (the installed shims' ``run``, the executor, install).
``PLUGIN_MODULES`` is a read-only view of that table: type -> module.
A plugin call imports only its own module, so a bridge call never pays
for the portmap code.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from pycni.registry import PLUGINS, import_plugin, load_plugin

__all__ = ["PLUGIN_MODULES", "import_plugin", "load_plugin", "run"]

PLUGIN_MODULES: Mapping[str, str] = MappingProxyType({name: entry.module for name, entry in PLUGINS.items()})


def run(plugin_type: str) -> None:
    """Entry point used by the installed shims: run one plugin call in-process.

    A plugin module with a ``command_line(argv) -> exit code`` takes the
    shim's arguments when it got some (``dhcp daemon -socketpath PATH``).
    """
    import sys

    from pycni import skel

    if len(sys.argv) > 1:
        command_line = getattr(import_plugin(plugin_type), "command_line", None)
        if command_line is not None:
            sys.exit(command_line(sys.argv[1:]))

    skel.main(load_plugin(plugin_type))
