"""firewall's config, its rules rendered as data, and the plugin's commands against a fake backend."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Callable, Collection, Iterator
from ipaddress import ip_address
from typing import Any

import pytest

from pycni import skel
from pycni.plugins.firewall import plugin as fw_plugin
from pycni.plugins.firewall import rules as r
from pycni.plugins.firewall.backend import Attachment, stale_tags
from pycni.plugins.firewall.conf import FirewallConf, parse_conf
from pycni.registry import load_plugin
from pycni.spec.errors import InvalidConfig

PLUGIN = load_plugin("firewall")

# -- config -----------------------------------------------------------------------


def parse(config: dict[str, Any], iptables: bool = True) -> FirewallConf:
    return parse_conf({"name": "n", "type": "firewall", **config}, iptables_usable=lambda: iptables)


def test_defaults_pick_iptables_when_usable_else_nftables() -> None:
    assert parse({}) == FirewallConf(backend="iptables", admin_chain="CNI-ADMIN", ingress_policy="open")
    assert parse({}, iptables=False).backend == "nftables"
    assert parse({"backend": ""}, iptables=False).backend == "nftables"  # podman writes "backend": ""


def test_explicit_values() -> None:
    got = parse({"backend": "nftables", "iptablesAdminChainName": "MY-ADMIN", "ingressPolicy": "same-bridge"})
    assert got == FirewallConf(backend="nftables", admin_chain="MY-ADMIN", ingress_policy="same-bridge")
    assert parse({"ingressPolicy": "isolated"}).ingress_policy == "isolated"
    assert parse({"ingressPolicy": ""}).ingress_policy == "open"
    assert parse({"IngressPolicy": "same-bridge"}).ingress_policy == "same-bridge"  # Go's case-insensitive keys


def test_explicit_backend_needs_no_probe() -> None:
    def probe() -> bool:
        raise AssertionError("probed")

    assert parse_conf({"backend": "iptables"}, iptables_usable=probe).backend == "iptables"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"backend": "firewalld"}, "backend: 'firewalld' is not supported by pycni"),
        ({"backend": "ebtables"}, "backend: 'ebtables' is not one of"),
        ({"backend": 1}, "backend: expected a string"),
        ({"ingressPolicy": "closed"}, "ingressPolicy: 'closed' is not one of"),
        ({"iptablesAdminChainName": "has space"}, "iptablesAdminChainName: 'has space' is not an iptables chain"),
        ({"iptablesAdminChainName": "X" * 29}, "is not an iptables chain name"),
        ({"iptablesAdminChainName": "-j"}, "is not an iptables chain name"),
        ({"iptablesAdminChainName": "CNI-FORWARD"}, "one of the plugin's"),
        ({"iptablesAdminChainName": "forward"}, "built-in chain"),
    ],
)
def test_bad_config_is_code_7_naming_the_key(config: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidConfig) as err:
        parse(config)
    assert err.value.code == 7 and message in err.value.msg


# -- rules as data -------------------------------------------------------------------

TAG = "pycni/firewall/net/ctr/eth0"


def test_iptables_rules_for_v4_and_v6() -> None:
    assert r.iptables_allow_rules(ip_address("10.1.2.3"), TAG) == [
        ["-d", "10.1.2.3/32", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-m", "comment", "--comment",
         TAG, "-j", "ACCEPT"],
        ["-s", "10.1.2.3/32", "-m", "comment", "--comment", TAG, "-j", "ACCEPT"],
    ]
    assert r.iptables_allow_rules(ip_address("fd00::5"), TAG)[1][:2] == ["-s", "fd00::5/128"]
    assert r.forward_jump() == ["-m", "comment", "--comment", "CNI firewall plugin rules", "-j", "CNI-FORWARD"]
    assert r.admin_jump("CNI-ADMIN") == [
        "-m", "comment", "--comment", "CNI firewall plugin admin overrides", "-j", "CNI-ADMIN"]


def test_iptables_isolation_rules_match_the_reference_layout() -> None:
    comment = ["-m", "comment", "--comment", "CNI firewall plugin rules (ingressPolicy: same-bridge)"]
    same = r.iptables_isolation("cni0", "same-bridge")
    assert same.stage1 == (("-i", "cni0", "!", "-o", "cni0", *comment, "-j", "CNI-ISOLATION-STAGE-2"),)
    assert same.stage2 == (("-o", "cni0", *comment, "-j", "DROP"),)
    assert same.tail == (*comment, "-j", "RETURN")
    assert r.stage1_jump("same-bridge") == [*comment, "-j", "CNI-ISOLATION-STAGE-1"]
    isolated = r.iptables_isolation("cni0", "isolated")
    assert len(isolated.stage1) == 2 and isolated.stage1[1][:4] == ("-i", "cni0", "-o", "cni0")
    assert isolated.stage1[1][-2:] == ("-j", "DROP")


def test_nft_skeleton_is_create_if_missing() -> None:
    plain = r.nft_skeleton(isolation=False)
    assert [next(iter(c["add"])) for c in plain] == ["table", "chain"]
    chain = plain[1]["add"]["chain"]
    assert (chain["table"], chain["name"], chain["hook"], chain["prio"], chain["policy"]) == (
        "pycni-firewall", "forward", "forward", 0, "accept")
    iso = r.nft_skeleton(isolation=True)
    names = [c["add"]["chain"]["name"] for c in iso if "chain" in c["add"]]
    assert names == ["forward", "isolation-stage-1", "isolation-stage-2"]
    assert iso[2]["add"]["chain"]["prio"] == -1 and "hook" not in iso[3]["add"]["chain"]


def test_nft_allow_rules_carry_the_owner_tag() -> None:
    v4 = r.nft_allow_rules(ip_address("10.1.2.3"), TAG)
    assert all(c["add"]["rule"]["comment"] == TAG and c["add"]["rule"]["chain"] == "forward" for c in v4)
    replies = v4[0]["add"]["rule"]["expr"]
    assert replies[0]["match"]["left"] == {"payload": {"protocol": "ip", "field": "daddr"}}
    assert replies[1]["match"]["right"] == ["established", "related"]
    assert v4[1]["add"]["rule"]["expr"][-1] == {"accept": None}
    v6 = r.nft_allow_rules(ip_address("fd00::5"), TAG)
    assert v6[1]["add"]["rule"]["expr"][0]["match"]["left"]["payload"]["protocol"] == "ip6"
    # what CHECK reads back from nft's listing
    listed = {"chain": "forward", "handle": 4, **v4[1]["add"]["rule"]}
    assert r.nft_rule_address(listed) == ("saddr", "10.1.2.3")
    assert r.nft_rule_address({"expr": [{"accept": None}]}) is None


def test_nft_bridge_rules() -> None:
    same = r.nft_bridge_rules("cni0", "same-bridge")
    assert [c["add"]["rule"]["chain"] for c in same] == ["isolation-stage-1", "isolation-stage-2"]
    assert all(c["add"]["rule"]["comment"] == "pycni firewall ingressPolicy same-bridge bridge cni0" for c in same)
    assert same[0]["add"]["rule"]["expr"][-1] == {"jump": {"target": "isolation-stage-2"}}
    assert same[1]["add"]["rule"]["expr"][-1] == {"drop": None}
    assert len(r.nft_bridge_rules("cni0", "isolated")) == 3


def test_stale_tags_of_one_network() -> None:
    tags = {
        "pycni/firewall/net/a/eth0",
        "pycni/firewall/net/b/eth0",
        "pycni/firewall/net/a/eth1",
        "pycni/firewall/other/b/eth0",  # another network
        "pycni/portmap/net/b/eth0",  # another plugin
        "CNI firewall plugin admin overrides",
        "",
    }
    assert stale_tags(tags, "net", [("a", "eth0")]) == {"pycni/firewall/net/b/eth0", "pycni/firewall/net/a/eth1"}
    long_name = "n" * 40  # hashed inside tags
    tag = Attachment(long_name, "a", "eth0").tag
    assert stale_tags({tag}, long_name, []) == {tag}
    assert stale_tags({tag}, long_name, [("a", "eth0")]) == set()


# -- the commands, with a fake backend -----------------------------------------------------


class FakeBackend:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def add(self, att: Attachment) -> None:
        self.calls.append(("add", att))

    def check(self, att: Attachment) -> None:
        self.calls.append(("check", att))

    def delete(self, att: Attachment) -> None:
        self.calls.append(("delete", att))

    def gc(self, network: str, valid: Collection[tuple[str, str]]) -> None:
        self.calls.append(("gc", (network, tuple(valid))))

    def prune_bridges(self, keep: Callable[[str], bool]) -> None:
        self.calls.append(("prune", keep))


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeBackend:
    backend = FakeBackend()

    @contextlib.contextmanager
    def no_lock(name: str) -> Iterator[None]:
        yield

    monkeypatch.setattr(fw_plugin, "make_backend", lambda name, admin: backend)
    monkeypatch.setattr(fw_plugin, "host_lock", no_lock)
    monkeypatch.setattr(fw_plugin, "_bridge_present", lambda name: name != "gone0")
    return backend


PREV = {
    "cniVersion": "1.0.0",
    "interfaces": [{"name": "cni0"}, {"name": "veth1"}, {"name": "eth0", "sandbox": "/run/netns/x"}],
    "ips": [{"address": "10.1.2.3/24", "interface": 2}, {"address": "fd00::3/64", "interface": 2}],
}
ENV = {"CNI_CONTAINERID": "ctr", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0", "CNI_PATH": "/bin"}


def call(command: str, **config: Any) -> skel.Outcome:
    stdin = {"cniVersion": "1.0.0", "name": "net", "type": "firewall", "backend": "nftables", **config}
    env = {**ENV, "CNI_COMMAND": command}
    if command == "GC":
        stdin["cniVersion"] = "1.1.0"
    return skel.dispatch(PLUGIN, env, json.dumps(stdin).encode())


def test_add_passes_prev_result_through_and_allows_every_address(fake: FakeBackend) -> None:
    out = call("ADD", prevResult=PREV)
    assert out.exit_code == 0, out.stdout
    assert json.loads(out.stdout)["ips"] == PREV["ips"]
    ((verb, att),) = fake.calls
    assert verb == "add" and att == Attachment("net", "ctr", "eth0", (ip_address("10.1.2.3"), ip_address("fd00::3")))
    assert att.tag == "pycni/firewall/net/ctr/eth0"


def test_add_with_ingress_policy_names_the_bridge(fake: FakeBackend) -> None:
    assert call("ADD", prevResult=PREV, ingressPolicy="same-bridge").exit_code == 0
    att = fake.calls[0][1]
    assert (att.policy, att.bridge) == ("same-bridge", "cni0")


@pytest.mark.parametrize(
    ("interfaces", "message"),
    [
        ([], "prevResult.interfaces: empty"),
        ([{"name": "eth0", "sandbox": "/run/netns/x"}], "is inside the container"),
    ],
)
def test_ingress_policy_needs_a_host_bridge_first(fake: FakeBackend, interfaces: list[Any], message: str) -> None:
    prev = {"cniVersion": "1.0.0", "interfaces": interfaces, "ips": [{"address": "10.1.2.3/24"}]}
    out = call("ADD", prevResult=prev, ingressPolicy="same-bridge")
    assert json.loads(out.stdout)["code"] == 7 and message in json.loads(out.stdout)["msg"]
    assert fake.calls == []


def test_add_and_check_need_prev_result(fake: FakeBackend) -> None:
    for command in ("ADD", "CHECK"):
        out = call(command)
        assert json.loads(out.stdout)["code"] == 7 and "prevResult" in json.loads(out.stdout)["msg"]
    assert fake.calls == []


def test_del_works_without_prev_result(fake: FakeBackend) -> None:
    assert call("DEL").exit_code == 0
    assert fake.calls == [("delete", Attachment("net", "ctr", "eth0"))]


def test_del_prunes_the_isolation_rules_of_a_bridge_that_is_gone(fake: FakeBackend) -> None:
    prev = {**PREV, "interfaces": [{"name": "gone0"}, *PREV["interfaces"][1:]]}
    assert call("DEL", prevResult=prev, ingressPolicy="same-bridge").exit_code == 0
    (_, att), (verb, keep) = fake.calls
    assert att.bridge == "gone0" and verb == "prune"
    assert not keep("gone0") and keep("cni0")
    fake.calls.clear()
    assert call("DEL", prevResult=PREV, ingressPolicy="same-bridge").exit_code == 0
    assert [verb for verb, _ in fake.calls] == ["delete"]  # cni0 still exists: its rules stay


def test_gc_hands_over_the_valid_attachments_then_prunes(fake: FakeBackend) -> None:
    valid = [{"containerID": "a", "ifname": "eth0"}]
    out = call("GC", **{"cni.dev/valid-attachments": valid})
    assert out.exit_code == 0, out.stdout
    assert fake.calls[0] == ("gc", ("net", (("a", "eth0"),)))
    verb, keep = fake.calls[1]
    assert verb == "prune" and keep("cni0") and not keep("gone0")


def test_versions_before_0_4_0_are_refused() -> None:
    assert PLUGIN.versions == ("0.4.0", "1.0.0", "1.1.0")
    env = {**ENV, "CNI_COMMAND": "ADD"}
    out = skel.dispatch(PLUGIN, env, b'{"cniVersion": "0.3.1", "name": "n", "type": "firewall"}')
    assert json.loads(out.stdout)["code"] == 1


def test_importing_the_plugin_is_light() -> None:
    code = ("import sys, pycni.plugins.firewall\n"
            "heavy = {'pyroute2', 'nftables', 'pycni.net.firewall.iptables.tool', 'pycni.plugins.firewall.plugin',"
            " 'pycni.spec.result'}\n"
            "assert not heavy & set(sys.modules), heavy & set(sys.modules)\n")
    subprocess.run([sys.executable, "-c", code], check=True)
