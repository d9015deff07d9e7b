"""portmap's rule rendering, pure: nft scripts and iptables-restore lines from states (no root)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import ip_address, ip_interface
from pathlib import Path
from typing import Any

import pytest

from pycni.plugins.portmap import iptables_backend as ipt
from pycni.plugins.portmap import nft_backend as nft
from pycni.plugins.portmap.conf import Attachment, FamilyTarget, Forward, PortMapConf, PortMapping
from pycni.plugins.portmap.nft_io import NftBackend
from pycni.spec.errors import CniError, InvalidConfig
from pycni.testing.iptables import FakeIptables
from pycni.testing.nft import FakeNft

FIXTURES = Path(__file__).parent / "fixtures"
ATT = Attachment("net1", "ctr1", "eth0")
TAG = "pycni/portmap/net1/ctr1/eth0"
V4 = FamilyTarget(
    4,
    ip_interface("10.1.0.5/24"),
    (
        PortMapping(8080, 80, "tcp"),
        PortMapping(5353, 53, "udp"),
        PortMapping(8081, 80, "tcp", ip_address("192.0.2.1")),
    ),
)
V6 = FamilyTarget(6, ip_interface("fd00:1::5/64"), (PortMapping(8080, 80, "tcp"),))


def conf(**kw: Any) -> PortMapConf:
    return PortMapConf(network=kw.pop("network", "net1"), cni_version="1.0.0", mappings=(), **kw)


def kernel_state() -> nft.TableState:
    """The table as the kernel listed it after ADDs of net1/ctr1 (V4, V6) and net2/ctr2 (sctp, masqAll)."""
    return nft.parse_state(json.loads((FIXTURES / "portmap_nft_table.json").read_text()))


# -- nftables ------------------------------------------------------------------------


def test_first_add_renders_the_whole_table() -> None:
    conditions = ("ip", "saddr", "!=", "10.9.0.0/16")
    script = nft.render_forward(nft.TableState(), ATT, [V4, V6], conf(conditions_v4=conditions))
    n = nft.network_id("net1")
    lines = script.splitlines()
    assert lines[:7] == [
        "add table inet pycni-portmap",
        "add chain inet pycni-portmap hostip_hostports",
        "add chain inet pycni-portmap hostports",
        "add chain inet pycni-portmap masquerading",
        "add chain inet pycni-portmap prerouting { type nat hook prerouting priority -100 ; }",
        "add chain inet pycni-portmap output { type nat hook output priority -100 ; }",
        "add chain inet pycni-portmap postrouting { type nat hook postrouting priority 100 ; }",
    ]
    assert (
        "add rule inet pycni-portmap prerouting fib daddr type local jump hostports"
        ' comment "pycni/portmap base: fib daddr type local jump hostports"'
    ) in lines
    ports4 = f"add map inet pycni-portmap {n}_ports4 {{ type inet_proto . inet_service : ipv4_addr . inet_service ; }}"
    assert ports4 in lines
    rules = [line for line in lines if line.startswith("add rule inet pycni-portmap hostports ")]
    assert rules[0].startswith(
        "add rule inet pycni-portmap hostports ip saddr != 10.9.0.0/16 meta nfproto ipv4"
        f" dnat ip to meta l4proto . th dport map @{n}_ports4 comment \"pycni/portmap/{n}/ports4 cond="
    )
    assert rules[1].startswith(  # conditionsV4 stay off the IPv6 rule
        f"add rule inet pycni-portmap hostports meta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @{n}_ports6"
    )
    elements = [line for line in lines if line.startswith("add element")]
    assert elements == [
        f'add element inet pycni-portmap {n}_ports4 {{ tcp . 8080 comment "{TAG}" : 10.1.0.5 . 80 }}',
        f'add element inet pycni-portmap {n}_masq4 {{ 10.1.0.0/24 . 10.1.0.5 . tcp . 80 comment "{TAG}" }}',
        f'add element inet pycni-portmap {n}_masq4 {{ 127.0.0.0/8 . 10.1.0.5 . tcp . 80 comment "{TAG}" }}',
        f'add element inet pycni-portmap {n}_ports4 {{ udp . 5353 comment "{TAG}" : 10.1.0.5 . 53 }}',
        f'add element inet pycni-portmap {n}_masq4 {{ 10.1.0.0/24 . 10.1.0.5 . udp . 53 comment "{TAG}" }}',
        f'add element inet pycni-portmap {n}_masq4 {{ 127.0.0.0/8 . 10.1.0.5 . udp . 53 comment "{TAG}" }}',
        f'add element inet pycni-portmap {n}_hostip4 {{ 192.0.2.1 . tcp . 8081 comment "{TAG}" : 10.1.0.5 . 80 }}',
        f'add element inet pycni-portmap {n}_ports6 {{ tcp . 8080 comment "{TAG}" : fd00:1::5 . 80 }}',
        f'add element inet pycni-portmap {n}_masq6 {{ fd00:1::/64 . fd00:1::5 . tcp . 80 comment "{TAG}" }}',
    ]


def test_snat_off_and_masq_all() -> None:
    no_snat = nft.render_forward(nft.TableState(), ATT, [V4], conf(snat=False))
    assert "_masq4 {" not in "".join(line for line in no_snat.splitlines() if line.startswith("add element"))
    masq_all = nft.desired_elements("n1", TAG, [V4, V6], conf(masq_all=True))
    masq = sorted(e.key[0] for e in masq_all if e.set.endswith(("masq4", "masq6")))
    assert masq == ["0.0.0.0/0", "0.0.0.0/0", "::/0"]


def test_parse_state_reads_keys_values_and_comments() -> None:
    state = kernel_state()
    n1, n2 = nft.network_id("net1"), nft.network_id("net2")
    assert state.exists
    assert nft.Element(f"{n1}_hostip4", ("192.0.2.1", "tcp", "8081"), ("10.1.0.5", "80"), TAG) in state.elements
    assert nft.Element(f"{n1}_masq6", ("fd00:1::/64", "fd00:1::5", "tcp", "80"), (), TAG) in state.elements
    assert nft.Element(f"{n2}_masq4", ("0.0.0.0/0", "10.2.0.7", "sctp", "90"), (), "pycni/portmap/net2/ctr2/eth0") in (
        state.elements
    )
    assert {r.chain for r in state.rules} == {"prerouting", "output", "postrouting", "hostports", "hostip_hostports",
                                              "masquerading"}


def test_repeated_add_replaces_own_elements_and_adds_no_rules() -> None:
    script = nft.render_forward(kernel_state(), ATT, [V4, V6], conf())
    assert not [line for line in script.splitlines() if line.startswith("add rule")]
    deletes = [line for line in script.splitlines() if line.startswith("delete element")]
    assert len(deletes) == 9 and all(TAG not in line for line in deletes)  # deleted by key


def test_add_on_a_complete_table_declares_nothing_again() -> None:
    script = nft.render_forward(kernel_state(), ATT, [V4, V6], conf())
    declarations = ("add table", "add chain", "add map", "add set")
    assert not [line for line in script.splitlines() if line.startswith(declarations)]
    empty = nft.render_forward(nft.TableState(), ATT, [V4, V6], conf()).splitlines()
    assert empty[0] == "add table inet pycni-portmap" and sum(line.startswith("add map") for line in empty) == 4


def test_changed_conditions_replace_the_network_rules() -> None:
    script = nft.render_forward(kernel_state(), ATT, [V4], conf(conditions_v4=("iifname", "eth9")))
    lines = script.splitlines()
    assert [line for line in lines if line.startswith("delete rule")] == [
        "delete rule inet pycni-portmap hostip_hostports handle 18",
        "delete rule inet pycni-portmap hostports handle 19",
    ]
    assert sum(line.startswith("add rule") and "iifname eth9" in line for line in lines) == 2


def test_a_port_held_by_another_attachment_is_refused() -> None:
    other = Attachment("net1", "ctr9", "eth0")
    with pytest.raises(InvalidConfig) as err:
        nft.render_forward(kernel_state(), other, [V6], conf())
    assert err.value.msg == (
        "runtimeConfig.portMappings: tcp host port 8080 is already forwarded to container ctr1 (eth0) of network net1"
    )
    # ... also when that attachment is on another network
    sctp = FamilyTarget(4, ip_interface("10.1.0.9/24"), (PortMapping(9090, 90, "sctp"),))
    with pytest.raises(InvalidConfig, match="sctp host port 9090 is already forwarded to container ctr2"):
        nft.render_forward(kernel_state(), other, [sctp], conf())
    # a host-IP mapping on a port another attachment maps on every address is allowed (the host IP wins)
    hostip = FamilyTarget(4, ip_interface("10.1.0.9/24"), (PortMapping(5353, 53, "udp", ip_address("192.0.2.9")),))
    nft.render_forward(kernel_state(), other, [hostip], conf())


def test_remove_deletes_only_the_owners_elements() -> None:
    script, removed = nft.render_remove(kernel_state(), "net1", lambda c: c == TAG)
    assert {e.comment for e in removed} == {TAG}
    lines = script.splitlines()
    # net1 is now empty, but its maps, sets and lookup rules stay (as the reference's chains do): elements only
    assert len(lines) == 9 and all(line.startswith("delete element ") for line in lines)
    n1 = nft.network_id("net1")
    assert f"delete element inet pycni-portmap {n1}_hostip4 {{ 192.0.2.1 . tcp . 8081 }}" in lines
    assert nft.plan_remove(kernel_state(), "net1", lambda c: c == TAG).lines == ()  # written without libnftables
    assert nft.forwards_from(removed) == [
        Forward(4, "tcp", 8080, "10.1.0.5", 80),
        Forward(4, "tcp", 8081, "10.1.0.5", 80, "192.0.2.1"),
        Forward(4, "udp", 5353, "10.1.0.5", 53),
        Forward(6, "tcp", 8080, "fd00:1::5", 80),
    ]


def test_the_table_stays_when_its_last_element_goes() -> None:
    state = kernel_state()
    _, removed = nft.render_remove(state, "net1", lambda c: c == TAG)
    rest = nft.TableState(True, state.sets, tuple(e for e in state.elements if e not in removed), state.rules)
    script, _ = nft.render_remove(rest, "net2", lambda c: True)
    lines = script.splitlines()
    n1, n2 = nft.network_id("net1"), nft.network_id("net2")
    # net2, emptied last, keeps its maps and rules; net1, empty and dropped without a GC, loses its own
    assert not any(line.startswith(("delete map", "delete set")) and n2 in line for line in lines)
    assert f"delete map inet pycni-portmap {n1}_ports4" in lines
    assert sum(line.startswith("delete rule") for line in lines) == 6
    assert "delete table inet pycni-portmap" not in lines
    # with net1 gone, a DEL that empties net2 removes elements only
    gone = nft.TableState(True, frozenset(x for x in state.sets if not x.startswith(n1)), rest.elements,
                          tuple(r for r in state.rules if not r.comment.startswith(f"pycni/portmap/{n1}/")))
    assert nft.plan_remove(gone, "net2", lambda c: True).lines == ()


def test_gc_drops_an_empty_networks_sets_and_lookup_rules() -> None:
    script, removed = nft.render_remove(kernel_state(), "net1", lambda c: c == TAG, drop_empty=True)
    lines = script.splitlines()
    assert len(lines) == 21 and all(line.startswith("delete ") for line in lines)  # 9 elements, 6 rules, 6 maps/sets
    n1 = nft.network_id("net1")
    assert f"delete map inet pycni-portmap {n1}_ports4" in lines
    assert sum(line.startswith("delete rule") for line in lines) == 6
    assert "delete table inet pycni-portmap" not in lines
    assert {e.comment for e in removed} == {TAG}
    # a network whose elements are already gone: GC still takes its sets and rules away; then nothing is left to do
    state = kernel_state()
    rest = nft.TableState(True, state.sets, tuple(e for e in state.elements if e.comment != TAG), state.rules)
    plan = nft.plan_remove(rest, "net1", lambda c: False, drop_empty=True)
    assert plan.deletes == () and len(plan.lines) == 12
    gone = nft.TableState(True, state.sets - {s for s in state.sets if s.startswith(n1)}, rest.elements,
                          tuple(r for r in state.rules if not r.comment.startswith(f"pycni/portmap/{n1}/")))
    assert nft.plan_remove(gone, "net1", lambda c: False, drop_empty=True) == nft.Plan()
    # a network another attachment still uses keeps them
    assert nft.plan_remove(state, "net1", lambda c: False, drop_empty=True) == nft.Plan()


def test_remove_of_an_unknown_owner_is_a_no_op() -> None:
    assert nft.render_remove(kernel_state(), "net1", lambda c: c == "pycni/portmap/net1/nope/eth0") == ("", [])
    assert nft.render_remove(nft.TableState(), "net1", lambda c: True) == ("", [])


def test_check_state() -> None:
    state = kernel_state()
    assert nft.check_state(state, ATT, [V4, V6], conf()) == []
    broken = nft.TableState(True, state.sets, tuple(e for e in state.elements if e.key[-1] != "5353"), state.rules)
    (problem,) = nft.check_state(broken, ATT, [V4, V6], conf())
    assert problem.startswith("element { udp . 5353 : 10.1.0.5 . 53 } of pycni/portmap/net1/ctr1/eth0 is missing")
    no_base = nft.TableState(True, state.sets, state.elements, tuple(r for r in state.rules if r.chain != "output"))
    assert len(nft.check_state(no_base, ATT, [V4, V6], conf())) == 2
    assert nft.check_state(nft.TableState(), ATT, [V4], conf()) == ["table inet pycni-portmap does not exist"]


def test_backend_shell_locks_only_when_it_writes() -> None:
    fake = FakeNft(json.loads((FIXTURES / "portmap_nft_table.json").read_text()), listing="table inet pycni-portmap")
    backend = NftBackend(fake, fake.lock)
    assert backend.unforward(Attachment("net1", "gone", "eth0")) == []
    assert fake.locks == 0 and fake.scripts == []
    assert backend.gc("net2", {("ctr2", "eth0")}) == []
    assert [f.host_port for f in backend.gc("net1", set())] == [8080, 8081, 5353, 8080]
    assert fake.locks == 1 and len(fake.scripts) == 1
    with pytest.raises(CniError, match="nftables rules of pycni/portmap/net1/ctr1/eth0 are incomplete"):
        backend.check(ATT, [FamilyTarget(4, V4.address, (PortMapping(1, 1, "tcp"),))], conf())


def test_removal_applies_what_it_read_and_reads_again_only_if_the_table_moved() -> None:
    from pycni.net.errors import NetError

    fake = FakeNft(json.loads((FIXTURES / "portmap_nft_table.json").read_text()), listing="table inet pycni-portmap")
    reads = 0
    real_list = fake.list_json

    def counting_list(what: str) -> list[dict[str, Any]]:
        nonlocal reads
        reads += 1
        return real_list(what)

    fake.list_json = counting_list  # type: ignore[method-assign]
    backend = NftBackend(fake, fake.lock)
    assert [f.host_port for f in backend.unforward(Attachment("net1", "ctr1", "eth0"))]
    assert (reads, len(fake.scripts)) == (1, 1)

    failures = ["handle 7 is gone"]

    def racing_apply(script: str) -> None:
        if failures:
            raise NetError(failures.pop())
        fake.scripts.append(script)

    fake.apply = racing_apply  # type: ignore[method-assign]
    assert [f.host_port for f in backend.unforward(Attachment("net1", "ctr1", "eth0"))]
    assert (reads, len(fake.scripts)) == (3, 2)  # read, failed apply, read again, apply


# -- iptables ------------------------------------------------------------------------


def test_iptables_first_add() -> None:
    empty = ipt.parse_nat(["-P PREROUTING ACCEPT"])
    lines = ipt.render_forward(empty, ATT, V4, conf(conditions_v4=("!", "-s", "10.9.0.0/16")))
    chain = ipt.dn_chain_name(ATT)
    assert chain.startswith("CNI-DN-") and len(chain) == 28
    tag = f"-m comment --comment {TAG}"
    assert lines == [
        "-N CNI-HOSTPORT-DNAT",
        "-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT",
        "-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT",
        "-N CNI-HOSTPORT-SETMARK",
        '-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000',
        "-N CNI-HOSTPORT-MASQ",
        '-A CNI-HOSTPORT-MASQ -m comment --comment "CNI portfwd requiring masquerade" -m mark --mark 0x2000/0x2000'
        " -j MASQUERADE",
        '-I POSTROUTING 1 -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ',
        f":{chain} - [0:0]",
        f"-A {chain} -p tcp -s 10.1.0.0/24 --dport 8080 {tag} -j CNI-HOSTPORT-SETMARK",
        f"-A {chain} -p tcp -s 127.0.0.1 --dport 8080 {tag} -j CNI-HOSTPORT-SETMARK",
        f"-A {chain} -p tcp --dport 8080 {tag} -j DNAT --to-destination 10.1.0.5:80",
        f"-A {chain} -p udp -s 10.1.0.0/24 --dport 5353 {tag} -j CNI-HOSTPORT-SETMARK",
        f"-A {chain} -p udp -s 127.0.0.1 --dport 5353 {tag} -j CNI-HOSTPORT-SETMARK",
        f"-A {chain} -p udp --dport 5353 {tag} -j DNAT --to-destination 10.1.0.5:53",
        f"-A {chain} -p tcp -d 192.0.2.1 -s 10.1.0.0/24 --dport 8081 {tag} -j CNI-HOSTPORT-SETMARK",
        f"-A {chain} -p tcp -d 192.0.2.1 -s 127.0.0.1 --dport 8081 {tag} -j CNI-HOSTPORT-SETMARK",
        f"-A {chain} -p tcp -d 192.0.2.1 --dport 8081 {tag} -j DNAT --to-destination 10.1.0.5:80",
        '-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"net1\\" id: \\"ctr1\\""'
        f" {tag} -m multiport --dports 8080,8081 ! -s 10.9.0.0/16 -j {chain}",
        '-A CNI-HOSTPORT-DNAT -p udp -m comment --comment "dnat name: \\"net1\\" id: \\"ctr1\\""'
        f" {tag} -m multiport --dports 5353 ! -s 10.9.0.0/16 -j {chain}",
    ]


def test_iptables_ipv6_external_mark_chain_and_many_ports() -> None:
    many = FamilyTarget(6, V6.address, tuple(PortMapping(9000 + i, 80, "tcp") for i in range(17)))
    lines = ipt.render_forward(ipt.NatTable(), ATT, many, conf(external_set_mark_chain="KUBE-MARK-MASQ"))
    assert not [line for line in lines if "SETMARK" in line or "MASQ " in line]
    chain, tag = ipt.dn_chain_name(ATT), f"-m comment --comment {TAG}"
    assert f"-A {chain} -p tcp -s fd00:1::/64 --dport 9000 {tag} -j KUBE-MARK-MASQ" in lines
    assert f"-A {chain} -p tcp --dport 9000 {tag} -j DNAT --to-destination [fd00:1::5]:80" in lines
    entries = [line for line in lines if line.startswith("-A CNI-HOSTPORT-DNAT")]
    assert len(entries) == 2 and "--dports 9015,9016 " in entries[1]  # multiport takes 15 ports


SAVED = f"""-P PREROUTING ACCEPT
-N CNI-DN-0123456789abcdef01234
-N {ipt.dn_chain_name(ATT)}
-N CNI-HOSTPORT-DNAT
-N CNI-HOSTPORT-MASQ
-N CNI-HOSTPORT-SETMARK
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A CNI-DN-0123456789abcdef01234 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.7.0.2:80
-A {ipt.dn_chain_name(ATT)} -s 10.1.0.0/24 -p tcp -m tcp --dport 8080 -m comment --comment "{TAG}" -j CNI-HOSTPORT-SETMARK
-A {ipt.dn_chain_name(ATT)} -p tcp -m tcp --dport 8080 -m comment --comment "{TAG}" -j DNAT --to-destination 10.1.0.5:80
-A {ipt.dn_chain_name(ATT)} -d 192.0.2.1/32 -p tcp -m tcp --dport 8081 -m comment --comment "{TAG}" -j DNAT --to-destination 10.1.0.5:80
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"net1\\" id: \\"ctr1\\"" -m comment --comment "{TAG}" -m multiport --dports 8080,8081 -j {ipt.dn_chain_name(ATT)}
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"go\\" id: \\"x\\"" -m multiport --dports 80 -j CNI-DN-0123456789abcdef01234
-A CNI-HOSTPORT-MASQ -m comment --comment "CNI portfwd requiring masquerade" -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
""".splitlines()  # noqa: E501


def test_iptables_parse_remove_and_gc() -> None:
    table = ipt.parse_nat(SAVED)
    chain = ipt.dn_chain_name(ATT)
    assert ipt.chain_forwards(table, chain, 4) == [
        Forward(4, "tcp", 8080, "10.1.0.5", 80),
        Forward(4, "tcp", 8081, "10.1.0.5", 80, "192.0.2.1"),
    ]
    assert ipt.render_remove(table, chain) == [
        '-D CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"net1\\" id: \\"ctr1\\""'
        f" -m comment --comment {TAG} -m multiport --dports 8080,8081 -j {chain}",
        f"-F {chain}",
        f"-X {chain}",
    ]
    assert ipt.render_remove(table, "CNI-DN-missing") == []
    # GC: only pycni-tagged chains of this network; the Go plugin's chain is left alone
    assert ipt.stale_chains(table, "net1", set()) == [chain]
    assert ipt.stale_chains(table, "net1", {("ctr1", "eth0")}) == []
    assert ipt.stale_chains(table, "net2", set()) == []
    # a repeated ADD drops the old entry rule before re-creating the chain
    again = ipt.render_forward(table, ATT, V4, conf())
    assert again[0].startswith("-D CNI-HOSTPORT-DNAT ") and again[1] == f":{chain} - [0:0]"


def test_iptables_check() -> None:
    table = ipt.parse_nat(SAVED)
    mappings = (PortMapping(8080, 80, "tcp"), PortMapping(8081, 80, "tcp", ip_address("192.0.2.1")))
    target = FamilyTarget(4, V4.address, mappings)
    assert ipt.check_table(table, ATT, target, conf()) == []
    missing = FamilyTarget(4, V4.address, (PortMapping(8082, 80, "tcp"),))
    problems = ipt.check_table(table, ATT, missing, conf())
    assert problems == [
        f"DNAT rule for tcp port 8082 is missing from {ipt.dn_chain_name(ATT)}",
        f"no rule in CNI-HOSTPORT-DNAT sends tcp port 8082 to {ipt.dn_chain_name(ATT)}",
    ]
    assert ipt.check_table(ipt.NatTable(), ATT, target, conf())[-1].endswith("does not exist")


def test_iptables_backend_shell() -> None:
    fake = FakeIptables(SAVED)

    @contextmanager
    def no_lock() -> Iterator[None]:
        yield

    backend = ipt.IptablesBackend(fake, no_lock)  # type: ignore[arg-type]
    assert [f.host_port for f in backend.unforward(ATT)] == [8080, 8081]
    assert fake.restored[0][1][-1] == f"-X {ipt.dn_chain_name(ATT)}"
    assert backend.unforward(Attachment("net1", "other", "eth0")) == []
    with pytest.raises(CniError, match="ip6tables cannot list the nat table"):
        backend.forward(ATT, [V6], conf())
