"""tap's config parsing (no root, no kernel)."""

from __future__ import annotations

import pytest

from pycni.plugins.tap import parse_conf
from pycni.spec.errors import InvalidConfig


def test_defaults() -> None:
    conf = parse_conf({})
    assert (conf.mac, conf.mtu, conf.multi_queue, conf.owner, conf.group) == ("", None, False, None, None)
    assert (conf.selinux_context, conf.bridge, conf.ipam_type) == ("", "", "")


def test_all_fields() -> None:
    conf = parse_conf(
        {
            "mac": "02:00:00:00:00:09",
            "mtu": 9000,
            "multiQueue": True,
            "owner": 0,
            "group": 107,
            "selinuxContext": "system_u:system_r:container_t:s0",
            "bridge": "br0",
            "ipam": {"type": "host-local"},
        }
    )
    assert (conf.mac, conf.mtu, conf.multi_queue, conf.owner, conf.group, conf.bridge) == (
        "02:00:00:00:00:09",
        9000,
        True,
        0,
        107,
        "br0",
    )
    assert conf.selinux_context == "system_u:system_r:container_t:s0" and conf.ipam_type == "host-local"


def test_documented_lower_case_selinuxcontext_spelling() -> None:
    assert parse_conf({"selinuxcontext": "x"}).selinux_context == "x"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"owner": -1}, "owner: expected a non-negative integer"),
        ({"group": 2**32}, "group: 4294967296 does not fit in 32 bits"),
        ({"multiQueue": 1}, "multiQueue: expected a boolean"),
        ({"bridge": "br 0"}, "bridge: 'br 0' is not a valid interface name"),
        ({"mac": "zz:zz:zz:zz:zz:zz"}, "mac: 'zz:zz:zz:zz:zz:zz' is not a MAC address"),
        ({"mtu": 70000}, "mtu: 70000 is out of range (0-65535)"),
        ({"selinuxContext": 5}, "selinuxContext: expected a string"),
    ],
)
def test_rejects(config: dict, message: str) -> None:
    with pytest.raises(InvalidConfig) as err:
        parse_conf(config)
    assert message in err.value.msg
