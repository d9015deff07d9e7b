"""portmap's config parsing and its handlers through skel.dispatch, with a fake backend (no root)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from ipaddress import ip_address, ip_interface
from typing import Any

import pytest

from pycni import skel
from pycni.plugins.portmap.conf import (
    Attachment,
    FamilyTarget,
    Forward,
    PortMapConf,
    PortMapping,
    conditions_syntax,
    container_addresses,
    forwards_of,
    parse_conf,
    plan_targets,
)
from pycni.plugins.portmap.plugin import KernelEffects, make_plugin
from pycni.spec.errors import InvalidConfig
from pycni.spec.result import Result

ENV = {"CNI_CONTAINERID": "ctr1", "CNI_NETNS": "/var/run/netns/pod", "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin"}

PREV = {
    "cniVersion": "1.0.0",
    "interfaces": [
        {"name": "cni0", "mac": "00:11:22:33:44:55"},
        {"name": "veth1", "mac": "00:11:22:33:44:66"},
        {"name": "eth0", "mac": "00:11:22:33:44:77", "sandbox": "/var/run/netns/pod"},
    ],
    "ips": [
        {"address": "10.1.0.1/24", "interface": 0},  # host side: not the container's
        {"address": "10.1.0.5/24", "gateway": "10.1.0.1", "interface": 2},
        {"address": "fd00:1::5/64", "interface": 2},
    ],
    "routes": [{"dst": "0.0.0.0/0"}],
    "dns": {},
}


#: What the plugin prints for PREV: the same result (an empty "dns" is not rendered).
PASSED_THROUGH = {k: v for k, v in PREV.items() if k != "dns"}


def config(mappings: list[dict[str, Any]] | None = None, prev: dict[str, Any] | None = PREV, **extra: Any) -> dict:
    conf: dict[str, Any] = {"cniVersion": "1.0.0", "name": "net1", "type": "portmap", **extra}
    if mappings is not None:
        conf["runtimeConfig"] = {"portMappings": mappings}
    if prev is not None:
        conf["prevResult"] = prev
    return conf


def message(conf: dict[str, Any]) -> str:
    with pytest.raises(InvalidConfig) as err:
        parse_conf(conf)
    return err.value.msg


# -- parse_conf --------------------------------------------------------------------


def test_defaults() -> None:
    conf = parse_conf(config([{"hostPort": 8080, "containerPort": 80}]))
    assert conf.backend == "nftables"
    assert conf.snat is True and conf.masq_all is False
    assert conf.mark_masq_bit == 13 and conf.external_set_mark_chain == ""
    assert conf.mappings == (PortMapping(8080, 80, "tcp", None, 0),)


def test_absent_and_empty_mappings_differ() -> None:
    assert parse_conf(config()).mappings is None
    assert parse_conf({**config(), "runtimeConfig": {}}).mappings is None
    assert parse_conf(config([])).mappings == ()


AT = "runtimeConfig.portMappings[0]"


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"hostPort": 70000, "containerPort": 80}, f"{AT}.hostPort: 70000 is out of range 1-65535"),
        ({"hostPort": 0, "containerPort": 80}, f"{AT}.hostPort: 0 is out of range 1-65535"),
        ({"hostPort": 80, "containerPort": -1}, f"{AT}.containerPort: -1 is out of range"),
        ({"hostPort": "80", "containerPort": 80}, f"{AT}.hostPort: expected an integer"),
        ({"containerPort": 80}, f"{AT}.hostPort: missing"),
        ({"hostPort": 80, "containerPort": 80, "protocol": "icmp"}, f"{AT}.protocol: 'icmp' is not one of"),
        ({"hostPort": 80, "containerPort": 80, "hostIP": "1.2.3"}, f"{AT}.hostIP: '1.2.3' is not an IP address"),
    ],
)
def test_bad_mapping_names_the_field(entry: dict[str, Any], expected: str) -> None:
    assert message(config([entry])).startswith(expected)


def test_second_entry_is_named_by_index() -> None:
    msg = message(config([{"hostPort": 80, "containerPort": 80}, {"hostPort": 99999, "containerPort": 80}]))
    assert msg == "runtimeConfig.portMappings[1].hostPort: 99999 is out of range 1-65535"


def test_protocol_is_case_insensitive() -> None:
    (mapping,) = parse_conf(config([{"hostPort": 53, "containerPort": 53, "protocol": "UDP"}])).mappings or ()
    assert mapping.protocol == "udp"


def test_duplicate_mappings() -> None:
    same = {"hostPort": 80, "containerPort": 8080}
    assert len(parse_conf(config([same, same])).mappings or ()) == 1
    msg = message(config([same, {"hostPort": 80, "containerPort": 9090}]))
    assert msg.startswith("runtimeConfig.portMappings[1]: tcp host port 80 is already mapped")
    # another protocol or another host IP is another mapping
    other = [same, {**same, "protocol": "udp"}, {**same, "hostIP": "192.0.2.1"}]
    assert len(parse_conf(config(other)).mappings or ()) == 3


def test_mark_bit_and_external_chain() -> None:
    assert message(config(markMasqBit=32)) == "markMasqBit: 32 is out of range 0-31"
    both = config(markMasqBit=5, externalSetMarkChain="KUBE-MARK-MASQ", backend="iptables")
    assert message(both).startswith("markMasqBit: cannot be set together with externalSetMarkChain")
    assert message(config(externalSetMarkChain="KUBE-MARK-MASQ")).startswith("externalSetMarkChain: only the iptables")
    assert parse_conf(config(externalSetMarkChain="X", backend="iptables")).external_set_mark_chain == "X"


def test_backend_and_conditions_syntax() -> None:
    assert message(config(backend="ebpf")).startswith("backend: 'ebpf' is not one of nftables, iptables")
    msg = message(config(conditionsV4=["!", "-d", "192.0.2.0/24"]))
    assert msg.startswith("conditionsV4: '! -d 192.0.2.0/24' is iptables syntax but the backend is nftables")
    msg = message(config(backend="iptables", conditionsV6=["ip6", "daddr", "!=", "fc00::/7"]))
    assert msg.startswith("conditionsV6: 'ip6 daddr != fc00::/7' is nftables syntax but the backend is iptables")
    assert message(config(conditionsV4=["ip daddr 1.2.3.4; flush ruleset"])).startswith("conditionsV4: a condition")
    conf = parse_conf(config(conditionsV4=["ip", "daddr", "!=", "192.0.2.0/24"]))
    assert conf.conditions(4) == ("ip", "daddr", "!=", "192.0.2.0/24") and conf.conditions(6) == ()
    assert conditions_syntax(["-s", "1.2.3.4"]) == "iptables" and conditions_syntax([]) == "nftables"


# -- container addresses and targets ---------------------------------------------------


def prev_result(raw: dict[str, Any] = PREV) -> Result:
    return Result.from_wire(raw)


def test_container_addresses_skip_host_side_and_other_interfaces() -> None:
    assert container_addresses(prev_result(), "eth0") == {
        4: ip_interface("10.1.0.5/24"),
        6: ip_interface("fd00:1::5/64"),
    }
    assert container_addresses(prev_result(), "eth1") == {}
    no_index = {"cniVersion": "1.0.0", "ips": [{"address": "10.9.0.2/16"}]}
    assert container_addresses(prev_result(no_index), "eth0") == {4: ip_interface("10.9.0.2/16")}


def test_targets_split_mappings_by_host_ip_family() -> None:
    conf = parse_conf(
        config(
            [
                {"hostPort": 80, "containerPort": 80},
                {"hostPort": 81, "containerPort": 81, "hostIP": "192.0.2.1"},
                {"hostPort": 82, "containerPort": 82, "hostIP": "2001:db8::1"},
                {"hostPort": 83, "containerPort": 83, "hostIP": "0.0.0.0"},
            ]
        )
    )
    v4, v6 = plan_targets(conf, prev_result(), "eth0")
    assert [m.host_port for m in v4.mappings] == [80, 81, 83]
    assert [m.host_port for m in v6.mappings] == [80, 82]
    assert Forward(4, "tcp", 83, "10.1.0.5", 83, None) in forwards_of([v4])  # 0.0.0.0: any address
    assert Forward(4, "tcp", 81, "10.1.0.5", 81, "192.0.2.1") in forwards_of([v4])


def test_host_ip_of_a_family_the_container_lacks_is_an_error() -> None:
    v4_only = {**PREV, "ips": PREV["ips"][:2]}
    v6_host = {"hostPort": 81, "containerPort": 81, "hostIP": "2001:db8::1"}
    conf = parse_conf(config([{"hostPort": 80, "containerPort": 80}, v6_host]))
    with pytest.raises(InvalidConfig) as err:
        plan_targets(conf, prev_result(v4_only), "eth0")
    assert err.value.msg == (
        "runtimeConfig.portMappings[1].hostIP: '2001:db8::1' is IPv6 but the container only has IPv4"
    )


def test_no_container_address_is_an_error() -> None:
    conf = parse_conf(config([{"hostPort": 80, "containerPort": 80}]))
    with pytest.raises(InvalidConfig, match="prevResult: no IP address of interface 'eth9'"):
        plan_targets(conf, prev_result(), "eth9")


# -- the handlers, with a fake backend ----------------------------------------------------


class FakeBackend:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.removed = [Forward(4, "udp", 5353, "10.1.0.5", 53)]

    def forward(self, att: Attachment, targets: Sequence[FamilyTarget], conf: PortMapConf) -> None:
        self.calls.append(("forward", (att, tuple(targets))))

    def check(self, att: Attachment, targets: Sequence[FamilyTarget], conf: PortMapConf) -> None:
        self.calls.append(("check", (att, tuple(targets))))

    def unforward(self, att: Attachment) -> list[Forward]:
        self.calls.append(("unforward", att))
        return self.removed

    def gc(self, network: str, valid: set[tuple[str, str]]) -> list[Forward]:
        self.calls.append(("gc", (network, valid)))
        return []


class FakeEffects(KernelEffects):
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def enable_route_localnet(self, targets: Sequence[FamilyTarget]) -> None:
        self.calls.append(("route_localnet", [str(t.ip) for t in targets]))

    def flush_conntrack(self, forwards: Sequence[Forward], *, after_delete: bool) -> None:
        self.calls.append(("conntrack", (list(forwards), after_delete)))


class Harness:
    def __init__(self) -> None:
        self.backend = FakeBackend()
        self.effects = FakeEffects()
        self.backends: list[str] = []

        def factory(name: str) -> FakeBackend:
            self.backends.append(name)
            return self.backend

        self.plugin = make_plugin(factory, self.effects)

    def run(self, command: str, conf: dict[str, Any]) -> tuple[int, Any]:
        outcome = skel.dispatch(self.plugin, {**ENV, "CNI_COMMAND": command}, json.dumps(conf).encode())
        return outcome.exit_code, json.loads(outcome.stdout) if outcome.stdout else None


@pytest.fixture
def h() -> Harness:
    return Harness()


def test_add_forwards_and_passes_prev_result_through(h: Harness) -> None:
    mappings = [{"hostPort": 8080, "containerPort": 80}, {"hostPort": 5353, "containerPort": 53, "protocol": "udp"}]
    code, out = h.run("ADD", config(mappings))
    assert code == 0
    assert out == PASSED_THROUGH
    ((name, (att, targets)),) = h.backend.calls
    assert name == "forward" and att == Attachment("net1", "ctr1", "eth0")
    assert [t.family for t in targets] == [4, 6]
    assert h.effects.calls[0] == ("route_localnet", ["10.1.0.5", "fd00:1::5"])
    kind, (forwards, after_delete) = h.effects.calls[1]
    assert kind == "conntrack" and after_delete is False
    assert Forward(4, "udp", 5353, "10.1.0.5", 53) in forwards


def test_add_converts_prev_result_to_the_config_version(h: Harness) -> None:
    conf = config([{"hostPort": 8080, "containerPort": 80}])
    conf["cniVersion"] = "0.4.0"
    code, out = h.run("ADD", conf)
    assert code == 0 and out["cniVersion"] == "0.4.0"
    assert out["ips"][1] == {"version": "4", "address": "10.1.0.5/24", "gateway": "10.1.0.1", "interface": 2}


def test_add_needs_prev_result(h: Harness) -> None:
    code, out = h.run("ADD", config([{"hostPort": 8080, "containerPort": 80}], prev=None))
    assert code == 1 and out["code"] == 7 and out["msg"].startswith("prevResult: missing")


@pytest.mark.parametrize("mappings", [None, []])
def test_no_mappings_touches_nothing(h: Harness, mappings: list[Any] | None) -> None:
    code, out = h.run("ADD", config(mappings))
    assert (code, out) == (0, PASSED_THROUGH)
    assert h.run("CHECK", config(mappings)) == (0, None)
    assert h.backends == [] and h.effects.calls == []


def test_bad_mapping_is_code_7_before_anything_happens(h: Harness) -> None:
    code, out = h.run("ADD", config([{"hostPort": 70000, "containerPort": 80}]))
    assert code == 1 and out["code"] == 7
    assert out["msg"] == "runtimeConfig.portMappings[0].hostPort: 70000 is out of range 1-65535"
    assert h.backends == []


def test_del_cleans_up_by_tag_without_runtime_config(h: Harness) -> None:
    assert h.run("DEL", config(None, prev=None)) == (0, None)
    assert h.backend.calls == [("unforward", Attachment("net1", "ctr1", "eth0"))]
    assert h.effects.calls == [("conntrack", (h.backend.removed, True))]


def test_del_and_gc_clean_up_after_a_config_add_refused(h: Harness) -> None:
    nft_conditions = ["ip", "daddr", "1.2.3.4"]  # wrong for iptables, and the port is out of range
    bad = config([{"hostPort": 70000, "containerPort": 80}], backend="iptables", conditionsV4=nft_conditions)
    assert h.run("DEL", bad) == (0, None)
    assert h.backends == ["iptables"] and h.backend.calls[0][0] == "unforward"
    bad["cniVersion"] = "1.1.0"
    assert h.run("GC", bad) == (0, None)


def test_del_with_an_empty_list_returns_at_once(h: Harness) -> None:
    assert h.run("DEL", config([])) == (0, None)
    assert h.backends == []


def test_del_uses_the_configured_backend(h: Harness) -> None:
    h.run("DEL", config([{"hostPort": 8080, "containerPort": 80}], backend="iptables"))
    assert h.backends == ["iptables"]


def test_check(h: Harness) -> None:
    assert h.run("CHECK", config([{"hostPort": 8080, "containerPort": 80}])) == (0, None)
    assert h.backend.calls[0][0] == "check"
    code, out = h.run("CHECK", config([{"hostPort": 8080, "containerPort": 80}], prev=None))
    assert code == 1 and out["code"] == 7


def test_gc_passes_the_valid_attachments(h: Harness) -> None:
    conf = config(None, prev=None)
    conf["cniVersion"] = "1.1.0"
    conf["cni.dev/valid-attachments"] = [{"containerID": "a", "ifname": "eth0"}]
    assert h.run("GC", {k: v for k, v in conf.items()}) == (0, None)
    assert h.backend.calls == [("gc", ("net1", {("a", "eth0")}))]


def test_package_import_is_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, pycni.plugins.portmap; "
        "heavy = [m for m in ('pyroute2', 'nftables', 'pycni.plugins.portmap.nft_backend', "
        "'pycni.plugins.portmap.iptables_backend', 'subprocess') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_host_ip_parsed_canonically() -> None:
    conf = parse_conf(config([{"hostPort": 1, "containerPort": 1, "hostIP": "::ffff:192.0.2.1"}]))
    assert (conf.mappings or ())[0].host_ip == ip_address("192.0.2.1")
