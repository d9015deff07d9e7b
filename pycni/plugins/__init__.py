"""pycni's plugins: one small module (or subpackage) per CNI type.

Which module implements which type is ``pycni.registry.PLUGINS``, the one
table of plugin types; this package re-exports its lookups for the callers
that start here (the installed shims' ``run``, the executor, install).
``PLUGIN_MODULES`` is a read-only view of that table: type -> module.
A plugin call imports only its own module, so a bridge call never pays
for the portmap code.
"""

from __future__ import annotations

from types import MappingProxyType

from pycni.registry import PLUGINS, import_plugin, load_plugin, plugin_info

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: run() is on the cold path
if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["PLUGIN_MODULES", "import_plugin", "load_plugin", "run"]

PLUGIN_MODULES: Mapping[str, str] = MappingProxyType({name: entry.module for name, entry in PLUGINS.items()})


def run(plugin_type: str) -> None:
    """Entry point used by the installed shims: run one plugin call in-process.

    A plugin module with a ``command_line(argv) -> exit code`` takes the
    shim's arguments when it got some (``dhcp daemon -socketpath PATH``).
    VERSION is answered from the registry alone, before skel is imported:
    the same bytes as ``skel.dispatch``, at a fraction of the start-up cost.
    """
    import posix  # not os: with python -I -S, os is one more import (~2 ms) before VERSION is answered
    import sys

    if len(sys.argv) > 1:
        command_line = getattr(import_plugin(plugin_type), "command_line", None)
        if command_line is not None:
            sys.exit(command_line(sys.argv[1:]))
    if posix.environ.get(b"CNI_COMMAND") == b"VERSION" and plugin_type in PLUGINS:
        sys.exit(_answer_version(plugin_type))

    from pycni import skel

    skel.main(load_plugin(plugin_type))


def _answer_version(plugin_type: str) -> int:
    """Print VERSION's answer (skel's rules: a terminal or an unreadable stdin is no request); the exit code."""
    import sys

    request = b""
    stream = sys.stdin
    try:
        if stream is not None and not stream.isatty():  # don't wait on a terminal
            request = stream.buffer.read()
    except OSError:
        pass
    sys.stdout.buffer.write(plugin_info(plugin_type, request))
    sys.stdout.flush()
    return 0
