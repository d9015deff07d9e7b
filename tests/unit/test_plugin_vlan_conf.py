"""vlan's config parsing (no root, no kernel)."""

from __future__ import annotations

import pytest

from pycni.plugins.vlan import parse_conf
from pycni.spec.errors import InvalidConfig

BASE = {"master": "eth0", "ipam": {"type": "host-local", "subnet": "10.1.2.0/24"}}


def test_defaults() -> None:
    conf = parse_conf(BASE)
    assert (conf.master, conf.vlan_id, conf.mtu, conf.link_in_container, conf.ipam_type) == (
        "eth0",
        0,
        None,
        False,
        "host-local",
    )


@pytest.mark.parametrize("vlan_id", [0, 1, 100, 4094])
def test_vlan_id_range(vlan_id: int) -> None:
    assert parse_conf({**BASE, "vlanId": vlan_id}).vlan_id == vlan_id


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"vlanId": 4095}, "vlanId: 4095 is out of range (0-4094)"),
        ({"vlanId": 5000}, "vlanId: 5000 is out of range (0-4094)"),
        ({"vlanId": -1}, "vlanId: -1 is out of range (0-4094)"),
        ({"vlanId": "10"}, "vlanId: expected an integer, got '10'"),
        ({"vlanId": True}, "vlanId: expected an integer"),
        ({"vlanId": 10.5}, "vlanId: expected an integer"),
        ({"master": ""}, "master: missing"),
        ({"master": None}, "master: missing"),
        ({"master": "eth0/x"}, "master: 'eth0/x' is not a valid interface name"),
        ({"mtu": -1}, "mtu: expected a non-negative integer"),
        ({"ipam": {}}, "ipam: vlan requires an IPAM configuration"),
        ({"linkInContainer": 0}, "linkInContainer: expected a boolean"),
    ],
)
def test_rejects(extra: dict, message: str) -> None:
    with pytest.raises(InvalidConfig) as err:
        parse_conf({**BASE, **extra})
    assert err.value.code == 7 and message in err.value.msg
