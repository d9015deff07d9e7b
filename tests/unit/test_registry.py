"""pycni.registry: the one table of plugin types, lazy handlers, and what each entry promises (no root)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import pycni.ipam
from pycni import skel
from pycni.plugins import PLUGIN_MODULES
from pycni.registry import PLUGINS, import_plugin, load_plugin

EVERY_TYPE = sorted(PLUGINS)


@pytest.mark.parametrize("plugin_type", EVERY_TYPE)
def test_every_entry_names_a_module_with_the_handlers_it_promises(plugin_type: str) -> None:
    entry = PLUGINS[plugin_type]
    module = import_plugin(plugin_type)
    assert module.__name__ == entry.module == PLUGIN_MODULES[plugin_type]
    for function in ("cmd_add", "cmd_del", "cmd_check"):
        assert callable(getattr(module, function)), function
    assert hasattr(module, "cmd_status") == entry.status
    assert hasattr(module, "cmd_gc") == entry.gc


@pytest.mark.parametrize("plugin_type", EVERY_TYPE)
def test_load_plugin_builds_the_plugin_from_the_entry(plugin_type: str) -> None:
    entry = PLUGINS[plugin_type]
    plugin = load_plugin(plugin_type)
    assert (plugin.name, plugin.about, plugin.versions) == (plugin_type, entry.about, entry.versions)
    assert (plugin.status is not None, plugin.gc is not None) == (entry.status, entry.gc)
    assert load_plugin(plugin_type) is plugin


def test_unknown_types_are_a_lookup_error() -> None:
    with pytest.raises(LookupError, match="pycni has no plugin of type 'nope'"):
        load_plugin("nope")
    with pytest.raises(LookupError, match="pycni has no plugin of type 'nope'"):
        import_plugin("nope")


def test_version_and_a_bare_run_import_no_plugin_module() -> None:
    code = (
        "import sys\n"
        "from pycni import skel\n"
        "from pycni.registry import PLUGINS, load_plugin\n"
        "for t in PLUGINS:\n"
        "    out = skel.dispatch(load_plugin(t), {'CNI_COMMAND': 'VERSION'}, b'{\"cniVersion\": \"1.0.0\"}')\n"
        "    assert out.exit_code == 0, out\n"
        "    assert skel.dispatch(load_plugin(t), {}, b'').stderr\n"
        "loaded = {e.module for e in PLUGINS.values()} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_handler_runs_the_modules_function_of_that_name(monkeypatch: pytest.MonkeyPatch) -> None:
    module = import_plugin("static")
    calls: list[str] = []
    monkeypatch.setattr(module, "cmd_check", lambda args: calls.append(args.container_id))
    env = {"CNI_COMMAND": "CHECK", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/x", "CNI_IFNAME": "eth0", "CNI_PATH": "/"}
    stdin = b'{"cniVersion": "1.0.0", "name": "n", "type": "static", "prevResult": {"cniVersion": "1.0.0"}}'
    outcome = skel.dispatch(load_plugin("static"), env, stdin)
    assert (outcome.exit_code, calls) == (0, ["c1"]), outcome.stdout


def test_ipam_does_not_import_the_plugins_layer() -> None:
    """ipam sits below plugins (docs/DESIGN.md): it looks plugin types up in the registry, anywhere in a file."""
    ipam = Path(pycni.ipam.__file__).parent
    upward = []
    for path in sorted(ipam.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            upward += [f"{path.name}: {name}" for name in names if name.startswith("pycni.plugins")]
    assert upward == []
