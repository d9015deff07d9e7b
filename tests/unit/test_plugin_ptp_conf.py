"""ptp's config parsing (no root, no kernel)."""

from __future__ import annotations

import pytest

from pycni.plugins.ptp import parse_conf
from pycni.registry import load_plugin
from pycni.spec.errors import InvalidConfig
from pycni.spec.result import DNS

PLUGIN = load_plugin("ptp")

IPAM = {"type": "host-local", "subnet": "10.1.2.0/24"}


def test_defaults() -> None:
    conf = parse_conf({"ipam": IPAM})
    assert (conf.mtu, conf.ip_masq, conf.ip_masq_backend, conf.ipam_type, conf.dns) == (
        None,
        False,
        "",
        "host-local",
        None,
    )


def test_all_fields() -> None:
    conf = parse_conf(
        {"ipam": IPAM, "mtu": 1400, "ipMasq": True, "ipMasqBackend": "nftables", "dns": {"nameservers": ["10.0.0.53"]}}
    )
    assert (conf.mtu, conf.ip_masq, conf.ip_masq_backend) == (1400, True, "nftables")
    assert conf.dns == DNS(nameservers=("10.0.0.53",))


def test_go_style_key_case_is_accepted() -> None:
    assert parse_conf({"ipam": IPAM, "IPMasq": True, "MTU": 9000}).ip_masq is True


def test_mtu_zero_means_kernel_default() -> None:
    assert parse_conf({"ipam": IPAM, "mtu": 0}).mtu is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"mtu": -1}, "mtu: expected a non-negative integer, got -1"),
        ({"mtu": 1.5}, "mtu: expected a non-negative integer"),
        ({"mtu": True}, "mtu: expected a non-negative integer"),
        ({"mtu": 65536}, "mtu: 65536 is out of range (0-65535)"),
        ({"ipMasq": "true"}, "ipMasq: expected a boolean"),
        ({"ipMasqBackend": "pf"}, "ipMasqBackend: 'pf' is not one of , iptables, nftables"),
        ({"ipam": {}}, "ipam: ptp requires an IPAM configuration"),
        ({"ipam": None}, "ipam: ptp requires an IPAM configuration"),
        ({"ipam": []}, "ipam: expected an object"),
        ({"ipam": {"type": 5}}, "ipam.type: expected a string"),
        ({"ipam": {"type": "a/b"}}, "ipam.type: 'a/b' is not a plugin name"),
        ({"dns": {"nameservers": "10.0.0.53"}}, "dns.nameservers: expected an array of strings"),
    ],
)
def test_rejects(extra: dict, message: str) -> None:
    with pytest.raises(InvalidConfig) as err:
        parse_conf({"ipam": IPAM, **extra})
    assert err.value.code == 7 and message in err.value.msg


def test_plugin_advertises_every_version_and_handlers() -> None:
    assert PLUGIN.name == "ptp" and "1.1.0" in PLUGIN.versions and "0.1.0" in PLUGIN.versions
    assert PLUGIN.status is not None and PLUGIN.gc is not None
