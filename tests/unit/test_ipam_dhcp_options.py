"""pycni.ipam.dhcp.options and .conf: option names, the request/provide options, what an ACK grants."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

import pytest

from pycni.ipam.dhcp.conf import DEFAULT_SOCKET, parse_lease_request, socket_path
from pycni.ipam.dhcp.options import client_identifier, grant, parse_option_name, plan_options
from pycni.ipam.dhcp.packet import BOOTREPLY, Message, Opt
from pycni.spec.errors import InvalidConfig
from pycni.spec.result import Route

CID = client_identifier("ctr1", "net1", "eth0")


def test_option_names_and_numbers() -> None:
    assert parse_option_name("routers", "x") == 3
    assert parse_option_name("host-name", "x") == 12
    assert parse_option_name("121", "x") == 121
    assert parse_option_name(60, "x") == 60
    for bad in ("no-such-option", "0", "255", "300", True, None):
        with pytest.raises(InvalidConfig, match=r"^ipam\.request\[0\]\.option"):
            parse_option_name(bad, "ipam.request[0].option")


def test_the_client_id_is_the_references() -> None:
    assert CID == b"\0ctr1/net1/eth0"
    assert len(client_identifier("c" * 300, "n", "eth0")) == 255  # type byte + 254


def test_default_request_is_routers_and_subnet_mask_after_the_configured_ones() -> None:
    plan = plan_options([{"option": "classless-static-route"}], [], {}, CID)
    assert plan.requested == (121, 3, 1)
    assert plan.provided == ((61, CID),)


def test_skip_default_drops_the_defaults() -> None:
    plan = plan_options([{"option": "121", "skipDefault": True}, {"option": "routers"}], [], {}, CID)
    assert plan.requested == (121, 3)


def test_provided_options_take_their_value_or_the_cni_arg() -> None:
    provide = [
        {"option": "host-name", "fromArg": "K8S_POD_NAME"},
        {"option": "vendor-class-identifier", "value": "pycni"},
        {"option": "user-class", "value": "dflt", "fromArg": "NOT_GIVEN"},
        {"option": "domain-name", "fromArg": "NOT_GIVEN"},  # no value at all: not sent
    ]
    plan = plan_options([], provide, {"K8S_POD_NAME": "web-1"}, CID)
    assert plan.provided == ((61, CID), (12, b"web-1"), (60, b"pycni"), (77, b"dflt"))


def test_a_provided_client_id_replaces_ours() -> None:
    config = {"name": "n", "ipam": {"type": "dhcp", "provide": [{"option": "dhcp-client-identifier", "value": "me"}]}}
    request = parse_lease_request(config, "ctr", "/run/netns/x", "eth0", {})
    assert request.client_id == b"me"
    assert request.options.provided == ((61, b"me"),)


@pytest.mark.parametrize(
    ("request_", "provide", "args", "message"),
    [
        (["x"], [], {}, "ipam.request\\[0\\]: expected an object"),
        ([{"option": "routers", "skipDefault": "yes"}], [], {}, "ipam.request\\[0\\].skipDefault"),
        ([], [{"option": "subnet-mask", "value": 5}], {}, "ipam.provide\\[0\\]: 'value' and 'fromArg'"),
        ([], [{"option": "53", "value": "x"}], {}, "ipam.provide\\[0\\].option: option 53 is the client's own"),
        ([], [{"option": "host-name", "value": "h" * 256}], {}, "ipam.provide\\[0\\].value: value too long"),
        ([], [{"option": "host-name", "fromArg": "H"}], {"H": "h" * 256}, "CNI_ARGS H \\(for ipam.provide\\[0\\]\\)"),
    ],
)
def test_bad_options_name_the_entry(request_, provide, args, message: str) -> None:
    with pytest.raises(InvalidConfig, match=message):
        plan_options(request_, provide, args, CID)


def test_socket_path_default_and_configured() -> None:
    assert socket_path({"ipam": {"type": "dhcp"}}) == DEFAULT_SOCKET == "/run/cni/dhcp.sock"
    assert socket_path({"ipam": {"type": "dhcp", "daemonSocketPath": "/tmp/d.sock"}}) == "/tmp/d.sock"
    with pytest.raises(InvalidConfig, match=r"ipam\.daemonSocketPath"):
        socket_path({"ipam": {"daemonSocketPath": 3}})
    with pytest.raises(InvalidConfig, match="ipam: expected an object"):
        socket_path({})


def seconds(n: int) -> bytes:
    return struct.pack("!I", n)


def ack(*options: tuple[int, bytes], yiaddr: str = "10.1.2.3") -> Message:
    return Message(op=BOOTREPLY, xid=1, chaddr=b"\0" * 6, yiaddr=IPv4Address(yiaddr), options=options)


BASE = (
    (Opt.SUBNET_MASK, bytes((255, 255, 255, 0))),
    (Opt.LEASE_TIME, seconds(3600)),
    (Opt.SERVER_ID, bytes((10, 1, 2, 1))),
)


def test_a_plain_ack_grants_address_gateway_default_route_and_rfc_timers() -> None:
    g = grant(ack(*BASE, (Opt.ROUTER, bytes((10, 1, 2, 254, 10, 1, 2, 253)))))
    assert g.address == IPv4Interface("10.1.2.3/24")
    assert g.server_id == IPv4Address("10.1.2.1") and g.gateway == IPv4Address("10.1.2.254")
    assert g.routes == (Route(dst=IPv4Network("0.0.0.0/0"), gw=IPv4Address("10.1.2.254")),)
    assert (g.lease_time, g.renew_after, g.rebind_after) == (3600, 1800, 3150)


def test_timers_from_the_server_unless_out_of_order() -> None:
    g = grant(ack(*BASE, (Opt.RENEWAL_TIME, seconds(100)), (Opt.REBINDING_TIME, seconds(200))))
    assert (g.renew_after, g.rebind_after) == (100, 200)
    g = grant(ack(*BASE, (Opt.RENEWAL_TIME, seconds(3200)), (Opt.REBINDING_TIME, seconds(9999))))
    assert (g.renew_after, g.rebind_after) == (1800, 3150)  # T2 past the lease, then T1 past T2: defaults


def test_static_routes_are_classful_and_come_with_the_default_route() -> None:
    routes = (
        bytes((10, 20, 0, 0, 10, 1, 2, 9)) + bytes((172, 16, 5, 0, 10, 1, 2, 8)) + bytes((192, 168, 1, 0, 10, 1, 2, 7))
    )
    g = grant(ack(*BASE, (Opt.STATIC_ROUTES, routes), (Opt.ROUTER, bytes((10, 1, 2, 254)))))
    assert [(str(r.dst), str(r.gw)) for r in g.routes] == [
        ("10.0.0.0/8", "10.1.2.9"),
        ("172.16.0.0/16", "10.1.2.8"),
        ("192.168.1.0/24", "10.1.2.7"),
        ("0.0.0.0/0", "10.1.2.254"),
    ]


def test_classless_routes_hide_static_routes_and_the_router_rfc_3442() -> None:
    classless = bytes((24, 192, 168, 7, 10, 1, 2, 9)) + bytes((0, 10, 1, 2, 250)) + bytes((32, 10, 9, 9, 9, 0, 0, 0, 0))
    g = grant(
        ack(
            *BASE,
            (Opt.CLASSLESS_ROUTES, classless),
            (Opt.STATIC_ROUTES, bytes(8)),
            (Opt.ROUTER, bytes((10, 1, 2, 254))),
        )
    )
    assert g.gateway == IPv4Address("10.1.2.254")  # still the result's gateway, as the reference
    assert [(str(r.dst), r.gw and str(r.gw)) for r in g.routes] == [
        ("192.168.7.0/24", "10.1.2.9"),
        ("0.0.0.0/0", "10.1.2.250"),
        ("10.9.9.9/32", None),  # router 0.0.0.0: on-link
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (BASE[1:], "Subnet Mask not found"),
        ((BASE[0], BASE[2]), "Lease Time not found"),
        (((Opt.SUBNET_MASK, b"\xff\x00"), *BASE[1:]), "subnet mask is 2 bytes"),
        (((Opt.SUBNET_MASK, bytes((255, 0, 255, 0))), *BASE[1:]), "is not a netmask"),
        ((*BASE, (Opt.CLASSLESS_ROUTES, bytes((24, 10, 1)))), "truncated"),
        ((*BASE, (Opt.CLASSLESS_ROUTES, bytes((33, 0, 0, 0, 0, 0, 0, 0, 0)))), "width 33"),
    ],
)
def test_a_bad_ack_is_refused_with_the_reason(options, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        grant(ack(*options))
