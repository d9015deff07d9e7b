"""The link plugins as a group: registry, light imports, no-IPAM STATUS/GC/DEL (no root, no kernel)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pycni import skel
from pycni.plugins import load_plugin

TYPES = ["ptp", "macvlan", "ipvlan", "vlan", "host-device", "dummy", "tap"]


@pytest.mark.parametrize("plugin_type", TYPES)
def test_registered_with_every_version_and_all_handlers(plugin_type: str) -> None:
    plugin = load_plugin(plugin_type)
    assert plugin.name == plugin_type
    assert plugin.versions[0] == "0.1.0" and plugin.versions[-1] == "1.1.0"
    assert plugin.status is not None and plugin.gc is not None and plugin.about


def test_loading_the_plugins_does_not_import_the_kernel_layer() -> None:
    """The registry answers VERSION and a bare run without importing a plugin module (they may import net/)."""
    code = (
        "import sys\n"
        "from pycni.registry import PLUGINS, load_plugin\n"
        "for plugin_type in PLUGINS: load_plugin(plugin_type)\n"
        "heavy = {m for m in sys.modules if m == 'pyroute2' or m.startswith('pycni.net.')"
        " or m in {entry.module for entry in PLUGINS.values()}}\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _call(plugin_type: str, command: str, config: dict, **env: str) -> skel.Outcome:
    base = {"CNI_COMMAND": command, "CNI_PATH": "/nonexistent", **env}
    stdin = json.dumps({"cniVersion": "1.1.0", "name": "net1", "type": plugin_type, **config}).encode()
    return skel.dispatch(load_plugin(plugin_type), base, stdin)


@pytest.mark.parametrize(
    ("plugin_type", "config"),
    [
        ("macvlan", {"master": "eth0"}),
        ("ipvlan", {"master": "eth0", "prevResult": {"cniVersion": "1.1.0"}}),
        ("tap", {}),
        ("host-device", {"device": "eth1"}),
    ],
)
def test_status_and_gc_without_ipam_succeed_without_delegating(plugin_type: str, config: dict) -> None:
    for command in ("STATUS", "GC"):
        outcome = _call(plugin_type, command, config)
        assert (outcome.exit_code, outcome.stdout) == (0, b""), outcome.stdout


@pytest.mark.parametrize("plugin_type", ["ptp", "vlan", "dummy"])
def test_status_of_plugins_that_require_ipam_names_the_missing_section(plugin_type: str) -> None:
    outcome = _call(plugin_type, "STATUS", {"master": "eth0"})
    error = json.loads(outcome.stdout)
    assert error["code"] == 7 and error["msg"].startswith("ipam: ")


@pytest.mark.parametrize("plugin_type", TYPES)
def test_del_without_netns_and_ipam_succeeds(plugin_type: str) -> None:
    # Even a config that could never ADD (here: no IPAM for ptp/vlan/dummy, no master for vlan) must DEL.
    outcome = _call(plugin_type, "DEL", {}, CNI_CONTAINERID="c1", CNI_IFNAME="eth0")
    assert (outcome.exit_code, outcome.stdout) == (0, b""), outcome.stdout


def test_check_needs_a_prev_result() -> None:
    env = {"CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0", "CNI_NETNS": "/run/netns/nonexistent-unit"}
    error = json.loads(_call("tap", "CHECK", {}, **env).stdout)
    assert error["code"] == 7 and "prevResult" in error["msg"]
