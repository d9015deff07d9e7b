"""pycni.net.netlink.lookup against pyroute2's full decoding of the same links: every field LinkInfo uses agrees."""

from __future__ import annotations

from typing import Any

import pytest

from pycni.net.errors import LinkNotFound
from pycni.net.netlink import lookup
from pycni.net.netlink.messages import pyroute2
from tests.support.host import run
from tests.support.netns import Netns


def _pyroute2_view() -> dict[str, dict[str, Any]]:
    """name -> the fields lookup decodes, as pyroute2 decodes them (the reference)."""
    ipr = pyroute2().IPRoute()  # completes the package if the light import path ran first
    try:
        out = {}
        for msg in ipr.link("dump"):
            info = msg.get_attr("IFLA_LINKINFO")
            kind = (info.get_attr("IFLA_INFO_KIND") if info is not None else None) or ""
            out[msg.get_attr("IFLA_IFNAME")] = {
                "index": msg["index"],
                "flags": msg["flags"],
                "mac": msg.get_attr("IFLA_ADDRESS") or "",
                "mtu": msg.get_attr("IFLA_MTU"),
                "oper_state": msg.get_attr("IFLA_OPERSTATE"),
                "master": msg.get_attr("IFLA_MASTER"),
                "alias": msg.get_attr("IFLA_IFALIAS") or "",
                "link": msg.get_attr("IFLA_LINK"),
                "link_netnsid": msg.get_attr("IFLA_LINK_NETNSID"),
                "kind": kind,
            }
        return out
    finally:
        ipr.close()


def _fields(raw: lookup.RawLink) -> dict[str, Any]:
    return {key: getattr(raw, key) for key in
            ("index", "flags", "mac", "mtu", "oper_state", "master", "alias", "link", "link_netnsid", "kind")}


def test_query_and_dump_agree_with_pyroute2_on_every_kind(hostns: Netns, ctrns: Netns) -> None:
    ns = hostns.name
    run("ip", "link", "add", "lqbr0", "type", "bridge", netns=ns)
    run("ip", "link", "add", "lqveth0", "type", "veth", "peer", "name", "eth0", "netns", ctrns.name, netns=ns)
    run("ip", "link", "set", "lqveth0", "master", "lqbr0", "up", netns=ns)
    run("ip", "link", "set", "lqbr0", "up", "alias", "a bridge", netns=ns)
    run("ip", "link", "add", "lqmv0", "link", "lqbr0", "type", "macvlan", "mode", "passthru", netns=ns)

    def compare() -> list[str]:
        reference = _pyroute2_view()
        dumped = {raw.name: raw for raw in lookup.dump_links()}
        assert set(dumped) == set(reference)
        for name, expected in reference.items():
            assert _fields(dumped[name]) == expected, name
            assert _fields(lookup.query_link(name=name)) == expected, name
            assert _fields(lookup.query_link(index=expected["index"])) == expected, name
            assert lookup.index_of(name) == expected["index"]
        return sorted(reference)

    names = hostns.call(compare)
    assert {"lo", "lqbr0", "lqveth0", "lqmv0"} <= set(names)
    macvlan = hostns.call(lookup.query_link, "lqmv0")
    assert (macvlan.kind, lookup.kind_u32(macvlan, 1)) == ("macvlan", 8)  # passthru
    veth = hostns.call(lookup.query_link, "lqveth0")
    assert veth.master == hostns.call(lookup.index_of, "lqbr0") and veth.link_netnsid is not None


@pytest.mark.parametrize("name", ["nosuchlink0", "x" * 16, "bad\0name"])
def test_missing_links_are_link_not_found(hostns: Netns, name: str) -> None:
    with pytest.raises(LinkNotFound, match="failed to find link"):
        hostns.call(lookup.query_link, name)
    with pytest.raises(LinkNotFound, match="failed to find link"):
        hostns.call(lookup.index_of, name)
    with pytest.raises(LinkNotFound, match="index 99999"):
        hostns.call(lookup.query_link, None, 99999)
