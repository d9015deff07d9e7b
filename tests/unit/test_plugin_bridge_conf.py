"""The bridge plugin's config: defaults, every option, and errors that name the field.

Also the pure planning of gateways and default routes, and the skel-level
behaviour that needs no kernel (a bad config is code 7 before anything runs).
"""

from __future__ import annotations

import json
from ipaddress import ip_address, ip_interface, ip_network
from typing import Any

import pytest

from pycni import skel
from pycni.plugins.bridge.conf import BridgeConf, parse_conf
from pycni.plugins.bridge.gateway import plan_l3
from pycni.registry import load_plugin
from pycni.spec.errors import InvalidConfig
from pycni.spec.result import DNS, IPConfig, Result, Route

PLUGIN = load_plugin("bridge")


def conf(**options: Any) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": "net1", "type": "bridge", **options}


def invalid(**options: Any) -> str:
    with pytest.raises(InvalidConfig) as info:
        parse_conf(conf(**options))
    return info.value.msg


def test_defaults() -> None:
    parsed = parse_conf(conf())
    assert parsed == BridgeConf(network="net1", cni_version="1.0.0")
    assert parsed.bridge == "cni0"
    assert not parsed.vlan_filtering
    assert parsed.mtu is None
    assert parsed.ipam_type == ""


def test_every_option() -> None:
    parsed = parse_conf(
        conf(
            bridge="br-test",
            isGateway=True,
            forceAddress=True,
            ipMasq=True,
            ipMasqBackend="nftables",
            mtu=1400,
            hairpinMode=True,
            vlan=100,
            vlanTrunk=[{"id": 200}, {"minID": 10, "maxID": 12}, {"id": 11}],
            preserveDefaultVlan=True,
            macspoofchk=True,
            enabledad=True,
            portIsolation=True,
            mac="0a:58:0a:00:00:05",
            ipam={"type": "host-local", "subnet": "10.1.0.0/24"},
            dns={"nameservers": ["10.1.0.53"], "search": ["svc"]},
        )
    )
    assert parsed.bridge == "br-test"
    assert parsed.is_gateway and not parsed.is_default_gateway
    assert parsed.force_address and parsed.ip_masq and parsed.ip_masq_backend == "nftables"
    assert parsed.mtu == 1400
    assert parsed.hairpin_mode and not parsed.promisc_mode
    assert parsed.vlan == 100
    assert parsed.vlan_trunk == (10, 11, 12, 200)
    assert parsed.preserve_default_vlan and parsed.vlan_filtering
    assert parsed.macspoofchk and parsed.enable_dad and parsed.port_isolation
    assert parsed.mac == "0a:58:0a:00:00:05"
    assert parsed.ipam_type == "host-local"
    assert parsed.dns == DNS(nameservers=("10.1.0.53",), search=("svc",))


def test_default_gateway_implies_gateway() -> None:
    parsed = parse_conf(conf(isDefaultGateway=True))
    assert parsed.is_gateway and parsed.is_default_gateway


def test_keys_match_case_insensitively_like_go() -> None:
    assert parse_conf(conf(ISGATEWAY=True, Bridge="br1")).is_gateway
    assert parse_conf(conf(Bridge="br1")).bridge == "br1"


def test_mtu_zero_means_kernel_default() -> None:
    assert parse_conf(conf(mtu=0)).mtu is None


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"mtu": "1500"}, "mtu"),
        ({"mtu": 1500.5}, "mtu"),
        ({"mtu": True}, "mtu"),
        ({"mtu": 20}, "mtu"),
        ({"mtu": -1}, "mtu"),
        ({"mtu": 70000}, "mtu"),
        ({"vlan": 5000}, "vlan"),
        ({"vlan": -1}, "vlan"),
        ({"vlan": "10"}, "vlan"),
        ({"bridge": "b" * 16}, "bridge"),
        ({"bridge": "has space"}, "bridge"),
        ({"bridge": "a/b"}, "bridge"),
        ({"bridge": 7}, "bridge"),
        ({"isGateway": "yes"}, "isGateway"),
        ({"ipMasq": 1}, "ipMasq"),
        ({"ipMasqBackend": "pf"}, "ipMasqBackend"),
        ({"mac": "not-a-mac"}, "mac"),
        ({"ipam": []}, "ipam"),
        ({"ipam": {"type": 3}}, "ipam.type"),
        ({"dns": {"nameservers": "8.8.8.8"}}, "dns.nameservers"),
        ({"vlanTrunk": {"id": 1}}, "vlanTrunk"),
        ({"vlanTrunk": [7]}, "vlanTrunk[0]"),
        ({"vlanTrunk": [{"id": 0}]}, "vlanTrunk[0].id"),
        ({"vlanTrunk": [{"id": 4095}]}, "vlanTrunk[0].id"),
        ({"vlanTrunk": [{"id": 5}, {"minID": 1}]}, "vlanTrunk[1].maxID"),
        ({"vlanTrunk": [{"maxID": 9}]}, "vlanTrunk[0].minID"),
        ({"vlanTrunk": [{"minID": 9, "maxID": 3}]}, "vlanTrunk[0]"),
        ({"vlanTrunk": [{}]}, "vlanTrunk[0]"),
    ],
)
def test_errors_name_the_field(options: dict[str, Any], field: str) -> None:
    assert invalid(**options).startswith(f"{field}: ")


def test_hairpin_and_promisc_are_exclusive() -> None:
    msg = invalid(hairpinMode=True, promiscMode=True)
    assert "hairpinMode" in msg and "promiscMode" in msg


def test_disable_container_interface_refuses_ipam() -> None:
    msg = invalid(disableContainerInterface=True, ipam={"type": "host-local"})
    assert msg.startswith("disableContainerInterface: ")
    assert parse_conf(conf(disableContainerInterface=True, ipam={})).disable_container_interface


def test_vlan_gateway_link_name_must_fit() -> None:
    # "<bridge>.<vlan>" carries the gateway address when both are set.
    assert invalid(bridge="b" * 12, vlan=100, isGateway=True).startswith("bridge: ")
    assert parse_conf(conf(bridge="b" * 12, vlan=100)).vlan == 100


def test_empty_dns_is_no_override() -> None:
    assert parse_conf(conf(dns={})).dns.is_empty()


# -- planning gateways and routes (pure) ------------------------------------------


def ipam_result(*ips: IPConfig, routes: tuple[Route, ...] = ()) -> Result:
    return Result(cni_version="1.0.0", ips=ips, routes=routes)


V4 = IPConfig(address=ip_interface("10.22.0.5/16"))
V6 = IPConfig(address=ip_interface("fd00:22::5/64"))


def test_plan_points_ips_at_the_container_and_fills_gateways() -> None:
    plan = plan_l3(ipam_result(V4, V6), parse_conf(conf(isGateway=True)))
    assert [ip.interface for ip in plan.ips] == [2, 2]
    assert [str(ip.gateway) for ip in plan.ips] == ["10.22.0.1", "fd00:22::1"]
    assert plan.gateways == (ip_interface("10.22.0.1/16"), ip_interface("fd00:22::1/64"))
    assert plan.routes == ()


def test_plan_without_gateway_leaves_ipam_gateways_alone() -> None:
    plan = plan_l3(ipam_result(V4), parse_conf(conf()))
    assert plan.ips[0].gateway is None
    assert plan.gateways == ()


def test_plan_keeps_an_ipam_gateway() -> None:
    given = IPConfig(address=ip_interface("10.22.0.5/16"), gateway=ip_address("10.22.0.254"))
    plan = plan_l3(ipam_result(given), parse_conf(conf(isGateway=True)))
    assert str(plan.ips[0].gateway) == "10.22.0.254"
    assert plan.gateways == (ip_interface("10.22.0.254/16"),)


def test_plan_adds_one_default_route_per_family() -> None:
    second = IPConfig(address=ip_interface("10.23.0.5/24"))
    plan = plan_l3(ipam_result(V4, second, V6), parse_conf(conf(isDefaultGateway=True)))
    assert plan.routes == (
        Route(dst=ip_network("0.0.0.0/0"), gw=ip_address("10.22.0.1")),
        Route(dst=ip_network("::/0"), gw=ip_address("fd00:22::1")),
    )
    assert len(plan.gateways) == 3


def test_plan_respects_an_ipam_default_route() -> None:
    given = (Route(dst=ip_network("0.0.0.0/0"), gw=ip_address("10.22.0.254")), Route(dst=ip_network("::/0")))
    plan = plan_l3(ipam_result(V4, V6, routes=given), parse_conf(conf(isDefaultGateway=True)))
    assert plan.routes == given


# -- through skel: no kernel needed for config errors -------------------------------

ENV = {"CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/none", "CNI_IFNAME": "eth0", "CNI_PATH": "/nonexistent"}


@pytest.mark.parametrize("command", ["ADD", "CHECK"])
def test_bad_config_is_code_7(command: str) -> None:
    stdin = json.dumps(conf(hairpinMode=True, promiscMode=True)).encode()
    outcome = skel.dispatch(PLUGIN, {**ENV, "CNI_COMMAND": command}, stdin)
    assert outcome.exit_code == 1
    error = json.loads(outcome.stdout)
    assert error["code"] == 7
    assert "hairpinMode" in error["msg"]


def test_del_of_a_config_that_could_never_add_succeeds() -> None:
    # A runtime DELs after every failed ADD; nothing was made, so there is nothing to fail on.
    stdin = json.dumps(conf(hairpinMode=True, promiscMode=True, mtu="x", ipMasq="yes")).encode()
    env = {**ENV, "CNI_COMMAND": "DEL", "CNI_NETNS": ""}
    assert skel.dispatch(PLUGIN, env, stdin).exit_code == 0


def test_status_without_ipam_succeeds() -> None:
    stdin = json.dumps({**conf(), "cniVersion": "1.1.0"}).encode()
    outcome = skel.dispatch(PLUGIN, {"CNI_COMMAND": "STATUS", "CNI_PATH": "/nonexistent"}, stdin)
    assert (outcome.exit_code, outcome.stdout) == (0, b"")
