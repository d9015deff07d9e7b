"""Pure parts of pycni.net.firewall.masquerade and .spoofcheck: names, tags, rendered transactions.

The names must match the reference plugins' exactly, so that pycni and the
Go plugins find (and tear down) each other's rules.
"""

from __future__ import annotations

from ipaddress import ip_interface
from typing import Any

from pycni.net.firewall.masquerade import (
    MASQ_CHAIN,
    TABLE,
    choose_backend,
    iptables_chain,
    iptables_comment,
    nft_comment,
    nft_setup_commands,
)
from pycni.net.firewall.spoofcheck import setup_commands


def test_iptables_chain_matches_the_reference() -> None:
    # Test vectors from containernetworking/plugins pkg/utils (FormatChainName).
    assert iptables_chain("test", "1234") == "CNI-2bbe0c48b91a7d1b8a6753a8"
    assert iptables_chain("testalongnamethatdoesnotmakesense", "1234") == "CNI-374f33fe84ab0ed84dcdebe3"
    assert len(iptables_chain("n", "c" * 64)) == 28  # iptables' chain name limit


def test_iptables_comment() -> None:
    assert iptables_comment("mynet", "abc") == 'name: "mynet" id: "abc"'


def test_nft_comment_is_tag_then_description() -> None:
    comment = nft_comment("mynet", "eth0", "abc")
    tag, _, rest = comment.partition(", ")
    network_hash, _, instance_hash = tag.partition("-")
    assert len(network_hash) == 16 and len(instance_hash) == 16
    assert rest == "net: mynet, if: eth0, id: abc"
    # same network, other attachment: same network hash, other instance hash
    other = nft_comment("mynet", "eth1", "abc")
    assert other.startswith(network_hash + "-") and not other.startswith(tag)


def test_nft_comment_fits_nft_limit() -> None:
    comment = nft_comment("n" * 100, "eth0", "c" * 64)
    assert len(comment.encode()) == 128
    assert '"' not in nft_comment('we"ird', "eth0", "c")


def test_nft_setup_is_one_transaction_with_one_rule_per_address() -> None:
    addresses = [ip_interface("10.1.0.5/24"), ip_interface("fd00:1::5/64")]
    commands = nft_setup_commands(addresses, "mynet", "eth0", "abc", stale_handles=[7])
    verbs = [next(iter(c)) for c in commands]
    assert verbs[:4] == ["add", "add", "add", "flush"]
    assert {"delete": {"rule": {"family": "inet", "table": TABLE, "chain": MASQ_CHAIN, "handle": 7}}} in commands
    rules = [
        c["add"]["rule"] for c in commands if "rule" in c.get("add", {}) and c["add"]["rule"]["chain"] == MASQ_CHAIN
    ]
    assert len(rules) == 2
    v4 = rules[0]
    assert v4["comment"] == nft_comment("mynet", "eth0", "abc")
    assert v4["expr"][0]["match"]["right"] == "10.1.0.5"
    assert v4["expr"][1]["match"] == {
        "op": "!=",
        "left": {"payload": {"protocol": "ip", "field": "daddr"}},
        "right": {"prefix": {"addr": "10.1.0.0", "len": 24}},
    }
    assert v4["expr"][2] == {"masquerade": None}
    assert rules[1]["expr"][0]["match"]["left"]["payload"]["protocol"] == "ip6"


def test_explicit_backend_needs_no_probe() -> None:
    assert choose_backend("iptables") == "iptables"
    assert choose_backend("nftables") == "nftables"


def test_spoofcheck_layout_matches_the_reference() -> None:
    commands = setup_commands("veth1234", "0a:58:0a:00:00:05", "ctr1", "eth0")
    chains = [c["add"]["chain"]["name"] for c in commands if "chain" in c.get("add", {})]
    assert chains == ["PREROUTING", "cni-br-iface-ctr1-eth0", "cni-br-iface-ctr1-eth0-mac"]
    rules = [c["add"]["rule"] for c in commands if "rule" in c.get("add", {})]
    assert {r["comment"] for r in rules} == {"macspoofchk-ctr1-eth0"}
    jump = rules[0]
    assert jump["chain"] == "PREROUTING"
    assert jump["expr"][0]["match"]["right"] == "veth1234"
    assert jump["expr"][1] == {"jump": {"target": "cni-br-iface-ctr1-eth0"}}
    assert rules[-2]["expr"][0]["match"]["right"] == "0a:58:0a:00:00:05"
    assert rules[-1]["expr"] == [{"drop": None}]


# -- iptables: one read, at most one write per family ----------------------------------

_EMPTY_NAT = "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n"


def _ipt_edit(text: str = _EMPTY_NAT, family: int = 4) -> Any:
    from pycni.net.firewall.iptables.state import TableEdit, parse_save

    return TableEdit(parse_save(text, "nat", family))  # type: ignore[arg-type]


def test_iptables_setup_lines_are_the_reference_layout() -> None:
    from pycni.net.firewall.masquerade import _ipt_setup

    chain, comment = iptables_chain("mynet", "abc"), iptables_comment("mynet", "abc")
    edit = _ipt_edit()
    addresses = [ip_interface("10.1.0.5/24"), ip_interface("10.1.0.6/24")]
    _ipt_setup(edit, addresses, chain, comment)
    quoted = '"name: \\"mynet\\" id: \\"abc\\""'
    assert edit.lines == [
        f"-N {chain}",
        f"-I {chain} 1 -d 10.1.0.0/24 -j ACCEPT -m comment --comment {quoted}",  # one ACCEPT for the one subnet
        f"-A {chain} ! -d 224.0.0.0/4 -j MASQUERADE -m comment --comment {quoted}",
        f"-A POSTROUTING -s 10.1.0.5 -j {chain} -m comment --comment {quoted}",
        f"-A POSTROUTING -s 10.1.0.6 -j {chain} -m comment --comment {quoted}",
    ]
    # again, over what iptables-save prints of it: nothing to do
    saved = (
        f"*nat\n:POSTROUTING ACCEPT [0:0]\n:{chain} - [0:0]\n"
        f"-A POSTROUTING -s 10.1.0.5/32 -m comment --comment {quoted} -j {chain}\n"
        f"-A POSTROUTING -s 10.1.0.6/32 -m comment --comment {quoted} -j {chain}\n"
        f"-A {chain} -d 10.1.0.0/24 -m comment --comment {quoted} -j ACCEPT\n"
        f"-A {chain} ! -d 224.0.0.0/4 -m comment --comment {quoted} -j MASQUERADE\nCOMMIT\n"
    )
    again = _ipt_edit(saved)
    _ipt_setup(again, addresses, chain, comment)
    assert again.lines == []

    # teardown of one address keeps the chain for the other; of both removes it
    from pycni.net.firewall.masquerade import _ipt_teardown

    one = _ipt_edit(saved)
    _ipt_teardown(one, chain, [addresses[0]])
    assert one.lines == [f"-D POSTROUTING -s 10.1.0.5/32 -m comment --comment {quoted} -j {chain}"]
    both = _ipt_edit(saved)
    _ipt_teardown(both, chain, [])
    assert [line.split()[0] for line in both.lines] == ["-D", "-D", "-F", "-X"]
    nothing = _ipt_edit()
    _ipt_teardown(nothing, chain, addresses)
    assert nothing.lines == []


def test_iptables_setup_v6_uses_the_v6_multicast_range() -> None:
    from pycni.net.firewall.masquerade import _ipt_setup

    edit = _ipt_edit(family=6)
    _ipt_setup(edit, [ip_interface("fd00:1::5/64")], "CNI-x", "c")
    assert "-A CNI-x ! -d ff00::/8 -j MASQUERADE -m comment --comment c" in edit.lines
