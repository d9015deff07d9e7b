"""sbr without a kernel: config parsing, which addresses count, the per-netns lock, the no-netns DEL."""

from __future__ import annotations

import json
from ipaddress import ip_address, ip_interface
from pathlib import Path
from typing import Any

import pytest

from pycni.net.rules import RuleInfo, _kernel_default_priority
from pycni.plugins.sbr.conf import SbrConf, parse_conf, relevant_ips
from pycni.registry import load_plugin
from pycni.skel import dispatch
from pycni.spec.errors import InvalidConfig
from pycni.spec.result import Interface, IPConfig, Result

PLUGIN = load_plugin("sbr")

# -- parse_conf ----------------------------------------------------------------


def test_defaults() -> None:
    assert parse_conf({"type": "sbr"}) == SbrConf(table=None, gateways=(), add_source_hints=False)


def test_all_options() -> None:
    conf = parse_conf({"table": 500, "gateways": ["192.0.2.1", "2001:db8::1"], "addSourceHints": True})
    assert conf.table == 500 and conf.add_source_hints
    assert conf.gateway(4) == ip_address("192.0.2.1")
    assert conf.gateway(6) == ip_address("2001:db8::1")


def test_gateway_of_a_family_not_given_is_none() -> None:
    assert parse_conf({"gateways": ["192.0.2.1"]}).gateway(6) is None


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"table": "100"}, "table: expected a non-negative integer"),
        ({"table": -1}, "table: expected a non-negative integer"),
        ({"table": 2**32}, "table: 4294967296 is not a routing table id"),
        ({"table": 0}, "table: 0 is the kernel's 'unspec' table"),
        ({"table": 254}, "table: 254 is the kernel's 'main' table"),
        ({"table": 255}, "table: 255 is the kernel's 'local' table"),
        ({"gateways": "192.0.2.1"}, "gateways: expected an array of strings"),
        ({"gateways": ["192.0.2.300"]}, r"gateways\[0\]: '192.0.2.300' is not an IP address"),
        ({"gateways": ["192.0.2.1", "192.0.2.2"]}, "gateways: at most one IPv4 gateway"),
        ({"gateways": ["2001:db8::1", "2001:db8::2"]}, "gateways: at most one IPv6 gateway"),
        ({"addSourceHints": "yes"}, "addSourceHints: expected a boolean"),
    ],
)
def test_invalid_config_names_the_field(config: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidConfig, match=message):
        parse_conf(config)


# -- which addresses --------------------------------------------------------------


def test_relevant_ips_are_those_on_the_interface_or_on_none() -> None:
    on_net1 = IPConfig(ip_interface("10.0.1.5/24"), ip_address("10.0.1.1"), interface=1)
    on_eth0 = IPConfig(ip_interface("10.0.0.5/24"), interface=0)
    unbound = IPConfig(ip_interface("fd00::5/64"))
    dangling = IPConfig(ip_interface("10.0.2.5/24"), interface=7)
    prev = Result(
        "1.0.0",
        interfaces=(Interface("eth0", sandbox="/x"), Interface("net1", sandbox="/x")),
        ips=(on_net1, on_eth0, unbound, dangling),
    )
    assert relevant_ips(prev, "net1") == [on_net1, unbound]
    assert relevant_ips(prev, "eth0") == [on_eth0, unbound]


# -- the kernel's default rule priority (what `ip rule add` without pref does) ----------


def rule(priority: int, table: int) -> RuleInfo:
    return RuleInfo(4, priority, table, None, None, 1)


def test_default_priority_is_second_rule_minus_one() -> None:
    assert _kernel_default_priority([rule(0, 255), rule(32766, 254), rule(32767, 253)]) == 32765
    assert _kernel_default_priority([rule(0, 255), rule(32765, 100), rule(32766, 254)]) == 32764
    assert _kernel_default_priority([rule(0, 255)]) == 0


# -- the plugin without a kernel ---------------------------------------------------------


PREV = {
    "cniVersion": "1.0.0",
    "interfaces": [{"name": "veth1"}, {"name": "net1", "sandbox": "/run/netns/x"}],
    "ips": [{"address": "10.1.0.5/24", "gateway": "10.1.0.1", "interface": 1}],
}


def call(command: str, config: dict[str, Any], netns: str, **env: str) -> tuple[int, Any]:
    conf = {"cniVersion": "1.0.0", "name": "n", "type": "sbr", **config}
    environ = {"CNI_COMMAND": command, "CNI_CONTAINERID": "c1", "CNI_NETNS": netns, "CNI_IFNAME": "net1",
               "CNI_PATH": "/opt/cni/bin", **env}  # fmt: skip
    outcome = dispatch(PLUGIN, environ, json.dumps(conf).encode())
    return outcome.exit_code, json.loads(outcome.stdout) if outcome.stdout else None


def test_add_without_prev_result_is_a_config_error(tmp_path: Path) -> None:
    code, out = call("ADD", {}, str(tmp_path / "ns"))
    assert (code, out["code"]) == (1, 7)
    assert out["msg"] == "prevResult: missing; sbr must be called as a chained plugin"


def test_add_without_addresses_for_the_interface_is_a_config_error(tmp_path: Path) -> None:
    prev = {**PREV, "ips": [{"address": "10.1.0.5/24", "interface": 0}]}
    _, out = call("ADD", {"prevResult": prev}, str(tmp_path / "ns"))
    assert out["code"] == 7 and out["msg"] == "prevResult: no IP addresses for interface 'net1'"


def test_del_without_netns_succeeds(tmp_path: Path) -> None:
    assert call("DEL", {"prevResult": PREV}, "", PYCNI_RUN_DIR=str(tmp_path)) == (0, None)


def test_del_of_a_vanished_netns_succeeds_and_creates_nothing(tmp_path: Path) -> None:
    gone = tmp_path / "netns" / "pod"
    gone.parent.mkdir()
    run = tmp_path / "run"
    assert call("DEL", {"prevResult": PREV}, str(gone), PYCNI_RUN_DIR=str(run)) == (0, None)
    assert not gone.exists() and list(gone.parent.iterdir()) == []
    assert not run.exists()  # not even the lock directory


def test_del_of_a_path_that_is_no_netns_succeeds(tmp_path: Path) -> None:
    # e.g. the empty regular file the reference leaves behind
    stray = tmp_path / "pod"
    stray.write_bytes(b"")
    assert call("DEL", {}, str(stray), PYCNI_RUN_DIR=str(tmp_path / "run")) == (0, None)


def test_del_with_a_bad_config_still_runs(tmp_path: Path) -> None:
    assert call("DEL", {"table": "x"}, str(tmp_path / "gone"), PYCNI_RUN_DIR=str(tmp_path)) == (0, None)


def test_plugin_answers_every_version() -> None:
    assert PLUGIN.versions[0] == "0.1.0"


def test_importing_the_plugin_does_not_import_pyroute2() -> None:
    import subprocess
    import sys

    code = "import sys, pycni.plugins.sbr; print('pyroute2' in sys.modules)"
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert out.stdout.strip() == "False"
