"""dummy's config parsing (no root, no kernel)."""

from __future__ import annotations

import pytest

from pycni.plugins.dummy import parse_conf
from pycni.spec.errors import InvalidConfig


def test_parses() -> None:
    conf = parse_conf({"ipam": {"type": "static"}, "mtu": 1280, "dns": {"domain": "pod.local"}})
    assert (conf.ipam_type, conf.mtu) == ("static", 1280)
    assert conf.dns is not None and conf.dns.domain == "pod.local"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "ipam: dummy requires an IPAM configuration"),
        ({"ipam": {}}, "ipam: dummy requires an IPAM configuration"),
        ({"ipam": "static"}, "ipam: expected an object"),
        ({"ipam": {"type": "static"}, "mtu": -1}, "mtu: expected a non-negative integer"),
    ],
)
def test_rejects(config: dict, message: str) -> None:
    with pytest.raises(InvalidConfig) as err:
        parse_conf(config)
    assert message in err.value.msg
