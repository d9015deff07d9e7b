"""ipvlan's config parsing and chained-master rules (no root, no kernel)."""

from __future__ import annotations

import json

import pytest

from pycni import skel
from pycni.plugins.ipvlan import parse_conf
from pycni.registry import load_plugin
from pycni.spec.errors import InvalidConfig

PLUGIN = load_plugin("ipvlan")

IPAM = {"type": "host-local", "subnet": "10.1.2.0/24"}


def test_defaults() -> None:
    conf = parse_conf({"ipam": IPAM})
    assert (conf.master, conf.mode, conf.mtu, conf.link_in_container, conf.ipam_type) == (
        "",
        "l2",
        None,
        False,
        "host-local",
    )


@pytest.mark.parametrize("mode", ["l2", "l3", "l3s"])
def test_modes(mode: str) -> None:
    assert parse_conf({"ipam": IPAM, "mode": mode}).mode == mode


def test_ipam_optional_when_chained() -> None:
    assert parse_conf({"prevResult": {"cniVersion": "1.0.0"}}).ipam_type == ""


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "ipam: ipvlan requires an IPAM configuration"),
        ({"ipam": IPAM, "mode": "l4"}, "mode: 'l4' is not one of l2, l3, l3s"),
        ({"ipam": IPAM, "master": "eth 0"}, "master: 'eth 0' is not a valid interface name"),
        ({"ipam": IPAM, "mtu": -9}, "mtu: expected a non-negative integer"),
    ],
)
def test_rejects(config: dict, message: str) -> None:
    with pytest.raises(InvalidConfig) as err:
        parse_conf(config)
    assert message in err.value.msg


def _add(config: dict) -> dict:
    env = {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "c1",
        "CNI_NETNS": "/run/netns/nonexistent-unit",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/nonexistent",
    }
    outcome = skel.dispatch(
        PLUGIN, env, json.dumps({"cniVersion": "1.0.0", "name": "n", "type": "ipvlan", **config}).encode()
    )
    assert outcome.exit_code == 1
    return json.loads(outcome.stdout)


def test_chained_master_needs_exactly_one_interface_in_prev_result() -> None:
    prev = {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "a"}, {"name": "b"}],
        "ips": [{"address": "10.1.2.3/24", "interface": 0}],
    }
    error = _add({"prevResult": prev})
    assert error["code"] == 7 and "chained master failure" in error["msg"]
