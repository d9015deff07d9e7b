"""macvlan's config parsing (no root, no kernel)."""

from __future__ import annotations

import pytest

from pycni.plugins.macvlan import parse_conf
from pycni.spec.errors import CniError


def test_defaults() -> None:
    conf = parse_conf({})
    assert conf.master == "" and conf.mode == "bridge" and conf.mtu is None and conf.mac == ""
    assert conf.link_in_container is False and conf.ipam_type == "" and conf.dns is None


def test_all_fields() -> None:
    conf = parse_conf(
        {
            "master": "eth1",
            "mode": "vepa",
            "mtu": 1450,
            "mac": "02:00:00:00:00:01",
            "linkInContainer": True,
            "ipam": {"type": "static"},
            "dns": {"search": ["example.org"]},
        }
    )
    assert (conf.master, conf.mode, conf.mtu, conf.mac, conf.link_in_container) == (
        "eth1",
        "vepa",
        1450,
        "02:00:00:00:00:01",
        True,
    )
    assert conf.ipam_type == "static" and conf.dns is not None and conf.dns.search == ("example.org",)


@pytest.mark.parametrize("mode", ["bridge", "private", "vepa", "passthru"])
def test_modes(mode: str) -> None:
    assert parse_conf({"mode": mode}).mode == mode


def test_empty_ipam_means_l2_only() -> None:
    assert parse_conf({"ipam": {}}).ipam_type == ""


def test_bcqueuelen_zero_is_accepted_and_nonzero_unsupported() -> None:
    assert parse_conf({"bcqueuelen": 0}).bc_queue_len == 0
    with pytest.raises(CniError) as err:
        parse_conf({"bcqueuelen": 1000})
    assert err.value.code == 2 and "bcqueuelen" in err.value.msg


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"mode": "foo"}, "mode: 'foo' is not one of bridge, private, vepa, passthru"),
        ({"mode": 1}, "mode: expected a string"),
        ({"master": "a" * 16}, "master: 'aaaaaaaaaaaaaaaa' is not a valid interface name (interface name is too long)"),
        ({"master": "../eth0"}, "master: '../eth0' is not a valid interface name"),
        ({"master": "eth0:1"}, "is not a valid interface name"),
        ({"master": ".."}, "is not a valid interface name"),
        ({"master": 7}, "master: expected a string"),
        ({"mtu": -1}, "mtu: expected a non-negative integer"),
        ({"mtu": "1500"}, "mtu: expected a non-negative integer"),
        ({"mac": "00:11:22:33:44"}, "mac: '00:11:22:33:44' is not a MAC address"),
        ({"linkInContainer": "yes"}, "linkInContainer: expected a boolean"),
        ({"bcqueuelen": -1}, "bcqueuelen: expected a non-negative integer"),
        ({"bcqueuelen": 2**32}, "bcqueuelen: 4294967296 does not fit in 32 bits"),
    ],
)
def test_rejects(config: dict, message: str) -> None:
    with pytest.raises(CniError) as err:
        parse_conf(config)
    assert err.value.code == 7 and message in err.value.msg
