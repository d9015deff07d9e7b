"""pycni.net's synchronous netlink path (``netlink.messages``) leaves the kernel as pyroute2's high-level API did.

The same addresses and routes are made twice, in two namespaces: with
pyroute2's ``IPRoute`` (the reference the plugins used before) and with
pycni.net's functions; ``ip -j -d`` must then show the same state.
"""

from __future__ import annotations

import errno
import json
from ipaddress import ip_address, ip_interface, ip_network
from typing import Any

import pytest

from pycni.net import addrs, links, routes
from pycni.net.errors import LinkExists, NetError, UnsupportedKernelFeature
from pycni.net.netlink import messages, wire
from pycni.net.netlink.messages import pyroute2
from tests.support.host import run
from tests.support.netns import Netns

ADDRESSES = ["10.61.0.2/24", "10.62.0.1/31", "10.63.0.9/32", "fd61::2/64"]
ROUTES: list[dict[str, Any]] = [
    {"dst": "10.70.0.0/24", "dev": "d0"},
    {"dst": "10.71.0.0/24", "gw": "10.61.0.1"},
    {"dst": "0.0.0.0/0", "gw": "10.61.0.1", "dev": "d0"},
    {"dst": "10.72.0.0/24", "gw": "10.61.0.1", "priority": 77, "mtu": 1400, "advmss": 1300},
    {"dst": "10.73.0.0/24", "dev": "d0", "scope": routes.RT_SCOPE_LINK, "src": "10.61.0.2"},
    {"dst": "10.74.0.0/24", "dev": "d0", "table": 100},
    {"dst": "10.75.0.0/24", "dev": "d0", "table": 1000},
    {"dst": "fd70::/64", "dev": "d0"},
    {"dst": "::/0", "gw": "fd61::1", "dev": "d0"},
    {"dst": "fd71::/64", "gw": "fd61::1", "priority": 0},
]


def _prepare(ns: Netns) -> None:
    run("ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1", netns=ns.name)
    run("ip", "link", "set", "d0", "up", netns=ns.name)
    run("ip", "link", "set", "d1", "up", netns=ns.name)


def _with_pyroute2() -> None:
    ipr = pyroute2().IPRoute()  # completes the package if the light import path ran first
    try:
        index = ipr.link_lookup(ifname="d0")[0]
        ipr.link("set", index=index, mtu=1450, address="02:00:00:00:61:01", ifalias="the d0")
        for text in ADDRESSES:
            cidr = ip_interface(text)
            spec: dict[str, Any] = {"index": index, "address": str(cidr.ip), "prefixlen": cidr.network.prefixlen}
            if cidr.version == 4 and cidr.network.prefixlen < 31:
                spec["broadcast"] = str(cidr.network.broadcast_address)
            ipr.addr("add", **spec)
        for route in ROUTES:
            dst = ip_network(route["dst"])
            spec = {"family": 2 if dst.version == 4 else 10, "dst_len": dst.prefixlen}
            if dst.prefixlen:
                spec["dst"] = str(dst.network_address)
            for key, name in (("gw", "gateway"), ("priority", "priority"), ("table", "table"), ("scope", "scope"),
                              ("src", "prefsrc")):
                if key in route:
                    spec[name] = route[key]
            if "dev" in route:
                spec["oif"] = index
            metrics = {k: route[k] for k in ("mtu", "advmss") if k in route}
            if metrics:
                spec["metrics"] = metrics
            ipr.route("add", **spec)
    finally:
        ipr.close()


def _with_pycni() -> None:
    links.set_link_mtu("d0", 1450)
    links.set_link_mac("d0", "02:00:00:00:61:01")
    links.set_link_alias("d0", "the d0")
    for text in ADDRESSES:
        addrs.add_address("d0", ip_interface(text))
    for route in ROUTES:
        kwargs = {k: v for k, v in route.items() if k in ("dev", "priority", "table", "scope", "mtu", "advmss")}
        if "gw" in route:
            kwargs["gw"] = ip_address(route["gw"])
        if "src" in route:
            kwargs["src"] = ip_address(route["src"])
        routes.add_route(ip_network(route["dst"]), **kwargs)


def _state(ns: Netns) -> dict[str, Any]:
    def show(*args: str) -> Any:
        return json.loads(run("ip", "-j", "-d", *args, netns=ns.name).stdout)

    link = show("link", "show", "d0")[0]
    return {
        "link": {k: link.get(k) for k in ("mtu", "address", "ifalias", "flags", "operstate")},
        "addresses": sorted(json.dumps({k: a.get(k) for k in ("local", "prefixlen", "broadcast", "scope", "family")},
                                       sort_keys=True) for a in show("addr", "show", "d0")[0]["addr_info"]
                           if a.get("scope") != "link"),  # link-local addresses follow the random MAC
        "routes": sorted(json.dumps(r, sort_keys=True) for r in show("route", "show", "table", "all")
                         + show("-6", "route", "show", "table", "all")
                         if r.get("type") != "multicast" and not r.get("dst", "").startswith("fe80::")),
    }


def test_same_kernel_state_as_pyroute2(make_netns: Any) -> None:
    reference, ours = make_netns(), make_netns()
    for ns in (reference, ours):
        _prepare(ns)
    reference.call(_with_pyroute2)
    ours.call(_with_pycni)
    assert _state(ours) == _state(reference)


def test_errors_carry_errno_and_the_kernels_text(hostns: Netns) -> None:
    _prepare(hostns)
    with pytest.raises(NetError) as exists:
        hostns.call(addrs.add_address, "d0", ip_interface("10.61.0.2/24"))
        hostns.call(addrs.add_address, "d0", ip_interface("10.61.0.2/24"))
    assert exists.value.errno == errno.EEXIST and "add address 10.61.0.2/24 to link 'd0'" in str(exists.value)
    assert not hostns.call(addrs.del_address, "d0", ip_interface("10.99.0.2/24"), missing_ok=True)
    with pytest.raises(LinkExists):
        peer = ("VETH_INFO_PEER", {"attrs": [("IFLA_IFNAME", "d9")]})
        hostns.call(messages.create_link, "veth", "d0", info_data=[peer])
    with pytest.raises(OSError, match="Unknown device type") as unknown:  # the extended ack's text
        hostns.call(messages.request, messages.link_msg(attrs=[
            ("IFLA_IFNAME", "zz0"), ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "nosuchkind")]})]),
            wire.RTM_NEWLINK, wire.NLM_F_CREATE | wire.NLM_F_EXCL)
    assert unknown.value.errno == errno.EOPNOTSUPP
    with pytest.raises(UnsupportedKernelFeature, match="kernel does not support link type 'nosuchkind'"):
        hostns.call(messages.create_link, "nosuchkind", "zz0")
