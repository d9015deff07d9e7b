"""iptables work batched per table (pycni.net.iptables_state) against the real tools.

- the rules produced are exactly those of the per-rule commands they
  replaced (GOLDEN was captured from that code), so pycni and the Go
  plugins still tear down each other's rules;
- ``canonical`` is what iptables prints back, for every rule the plugins write;
- DEL removes exactly its own lines, also when another process deletes
  one of them between the read and the write;
- each operation starts at most one read and one write process per family;
- with iptables-nft, DEL and ADD (shared chains in place) start none:
  both go over nfnetlink (the in-process paths), and the rules ADD writes
  are those iptables-save shows for the tool's own; the tests of the tool
  path turn those off (``tool_path_only``).

The host's tables are shared with other tests: every name here is unique,
addresses come from the documentation ranges, and only lines that carry
those names are looked at.
"""

from __future__ import annotations

import os
import random
import subprocess
import uuid
from collections.abc import Callable, Iterator
from ipaddress import ip_address, ip_interface
from typing import Any

import pytest

from pycni.net.firewall import masquerade, nft
from pycni.net.firewall.iptables import state as iptables_state
from pycni.net.firewall.iptables import tool as iptables
from pycni.net.firewall.iptables.save_restore import quote, restore
from pycni.net.firewall.iptables.tool import Family
from pycni.plugins.firewall import iptables_backend
from pycni.plugins.firewall import rules as r
from pycni.plugins.firewall.backend import Attachment
from pycni.plugins.firewall.iptables_backend import IptablesBackend
from tests.integration.hostrules import host_rules_guard

GOLDEN = r"""
iptables-save *filter -A CNI-FORWARD -d {ip4a}/32 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "pycni/firewall/{net}/{cid}/eth0" -j ACCEPT
iptables-save *filter -A CNI-FORWARD -s {ip4a}/32 -m comment --comment "pycni/firewall/{net}/{cid}/eth0" -j ACCEPT
iptables-save *filter -A CNI-FORWARD -d {ip4b}/32 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "pycni/firewall/{net}/{cid2}/eth0" -j ACCEPT
iptables-save *filter -A CNI-FORWARD -s {ip4b}/32 -m comment --comment "pycni/firewall/{net}/{cid2}/eth0" -j ACCEPT
iptables-save *filter -A CNI-ISOLATION-STAGE-1 -i {br1} ! -o {br1} -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge)" -j CNI-ISOLATION-STAGE-2
iptables-save *filter -A CNI-ISOLATION-STAGE-1 -i {br0} -o {br0} -m comment --comment "CNI firewall plugin rules (ingressPolicy: isolated)" -j DROP
iptables-save *filter -A CNI-ISOLATION-STAGE-1 -i {br0} ! -o {br0} -m comment --comment "CNI firewall plugin rules (ingressPolicy: isolated)" -j CNI-ISOLATION-STAGE-2
iptables-save *filter -A CNI-ISOLATION-STAGE-2 -o {br1} -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge)" -j DROP
iptables-save *filter -A CNI-ISOLATION-STAGE-2 -o {br0} -m comment --comment "CNI firewall plugin rules (ingressPolicy: isolated)" -j DROP
iptables-save *nat :{chain} -
iptables-save *nat -A POSTROUTING -s {ip4a}/32 -m comment --comment "name: \"{net}\" id: \"{cid}\"" -j {chain}
iptables-save *nat -A {chain} -d {net4}/24 -m comment --comment "name: \"{net}\" id: \"{cid}\"" -j ACCEPT
iptables-save *nat -A {chain} ! -d 224.0.0.0/4 -m comment --comment "name: \"{net}\" id: \"{cid}\"" -j MASQUERADE
ip6tables-save *filter -A CNI-FORWARD -d {ip6a}/128 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "pycni/firewall/{net}/{cid}/eth0" -j ACCEPT
ip6tables-save *filter -A CNI-FORWARD -s {ip6a}/128 -m comment --comment "pycni/firewall/{net}/{cid}/eth0" -j ACCEPT
ip6tables-save *filter -A CNI-ISOLATION-STAGE-1 -i {br0} -o {br0} -m comment --comment "CNI firewall plugin rules (ingressPolicy: isolated)" -j DROP
ip6tables-save *filter -A CNI-ISOLATION-STAGE-1 -i {br0} ! -o {br0} -m comment --comment "CNI firewall plugin rules (ingressPolicy: isolated)" -j CNI-ISOLATION-STAGE-2
ip6tables-save *filter -A CNI-ISOLATION-STAGE-2 -o {br0} -m comment --comment "CNI firewall plugin rules (ingressPolicy: isolated)" -j DROP
ip6tables-save *nat :{chain} -
ip6tables-save *nat -A POSTROUTING -s {ip6a}/128 -m comment --comment "name: \"{net}\" id: \"{cid}\"" -j {chain}
ip6tables-save *nat -A {chain} -d {net6}/64 -m comment --comment "name: \"{net}\" id: \"{cid}\"" -j ACCEPT
ip6tables-save *nat -A {chain} ! -d ff00::/8 -m comment --comment "name: \"{net}\" id: \"{cid}\"" -j MASQUERADE
"""  # noqa: E501

FAMILIES: tuple[Family, ...] = (4, 6)
TOOLS = frozenset(
    f"{prefix}{suffix}" for prefix in ("iptables", "ip6tables") for suffix in ("", "-save", "-restore")
)


@pytest.fixture(autouse=True)
def _needs_iptables() -> None:
    if not (iptables.available(4) and iptables.available(6)):
        pytest.skip("needs iptables and ip6tables")


class Names:
    """One test's unique names and documentation-range addresses."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:8]
        rng = random.Random(os.urandom(8))
        octet, group = rng.randint(2, 250), rng.randint(1, 0xFFFF)
        self.net, self.cid, self.cid2 = f"bt{tag}", f"btc{tag}", f"btc{tag}2"
        self.br0, self.br1 = f"btb{tag}", f"btd{tag}"
        self.ip4a, self.ip4b, self.net4 = f"192.0.2.{octet}", f"192.0.2.{octet + 1}", "192.0.2.0"
        self.ip6a, self.net6 = f"2001:db8:{group:x}::5", f"2001:db8:{group:x}::"
        self.chain = masquerade.iptables_chain(self.net, self.cid)

    def fields(self) -> dict[str, str]:
        return dict(vars(self))

    def markers(self) -> tuple[str, ...]:
        return (self.net, self.br0, self.br1, self.chain)

    def att(self) -> Attachment:
        return Attachment(self.net, self.cid, "eth0", (ip_address(self.ip4a), ip_address(self.ip6a)),
                          policy="isolated", bridge=self.br0)

    def att2(self) -> Attachment:
        return Attachment(self.net, self.cid2, "eth0", (ip_address(self.ip4b),), policy="same-bridge",
                          bridge=self.br1)

    def masq_addresses(self) -> list[Any]:
        return [ip_interface(f"{self.ip4a}/24"), ip_interface(f"{self.ip6a}/64")]


@pytest.fixture
def names() -> Iterator[Names]:
    n = Names()
    with host_rules_guard(n.net):  # removes this network's masquerade rules, whatever happens
        try:
            yield n
        finally:
            backend = IptablesBackend("CNI-ADMIN")
            for att in (n.att(), n.att2()):
                backend.delete(att)
            backend.prune_bridges(lambda bridge: bridge not in (n.br0, n.br1))


@pytest.fixture
def tool_path_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The firewall backend without its iptables-nft shortcuts: every change is a save and a restore."""
    monkeypatch.setattr(IptablesBackend, "_delete_in_process", staticmethod(lambda family, tag: False))
    monkeypatch.setattr(IptablesBackend, "_append_in_process", lambda self, att, version: False)


def own_lines(names: Names) -> list[str]:
    """iptables-save / ip6tables-save lines carrying this test's names, as '<tool> *<table> <line>'."""
    out = []
    for tool in ("iptables-save", "ip6tables-save"):
        table = ""
        for line in subprocess.run([tool], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("*"):
                table = line
            elif not line.startswith("#") and any(m in line for m in names.markers()):
                out.append(f"{tool} {table} {line.split(' [')[0]}".rstrip())
    return out


# -- the rules produced ------------------------------------------------------------------


def test_rules_are_those_of_the_per_rule_commands(names: Names) -> None:
    backend = IptablesBackend("CNI-ADMIN")
    backend.add(names.att())
    backend.add(names.att2())
    backend.add(names.att())  # idempotent
    for _ in range(2):
        masquerade.setup_masquerade(names.masq_addresses(), names.net, "eth0", names.cid, backend="iptables")
    expected = [line.format(**names.fields()) for line in GOLDEN.strip().splitlines()]
    assert own_lines(names) == expected
    backend.check(names.att())
    backend.check(names.att2())
    assert masquerade.missing_masquerade(names.masq_addresses(), names.net, "eth0", names.cid) == []
    for family in FAMILIES:  # the isolation jumps stay ahead of the jump to CNI-FORWARD
        targets = [rule[-1] for rule in iptables_state.save(family, "filter").rules("FORWARD")]
        assert targets.index(r.STAGE1) < targets.index(r.CNI_FORWARD)

    backend.delete(names.att())
    masquerade.teardown_masquerade(names.net, "eth0", names.cid, names.masq_addresses())
    remaining = own_lines(names)
    assert remaining == [line for line in expected if names.cid2 in line or names.br1 in line or names.br0 in line]
    backend.delete(names.att2())
    backend.prune_bridges(lambda bridge: bridge not in (names.br0, names.br1))
    assert own_lines(names) == []


def _user_chain_targets(rule: list[str], target: str) -> list[str]:
    """``rule`` with a jump to a user chain redirected to ``target`` (this test's own chain)."""
    out = list(rule)
    if "-j" in out[:-1]:
        index = out.index("-j") + 1
        if out[index] not in ("ACCEPT", "DROP", "RETURN", "MASQUERADE"):
            out[index] = target
    return out


def _plugin_rules(family: Family) -> dict[str, list[list[str]]]:
    """Every rule the firewall and masquerade write, by table, as the plugins pass them."""
    ip = ip_address("192.0.2.7" if family == 4 else "2001:db8::7")
    filt = [r.forward_jump(), r.admin_jump("CNI-ADMIN"), *r.iptables_allow_rules(ip, "pycni/firewall/n/c/eth0")]
    for policy in ("same-bridge", "isolated"):
        iso = r.iptables_isolation("br-x", policy)
        filt += [r.stage1_jump(policy), *map(list, iso.stage1), *map(list, iso.stage2), list(iso.tail)]
    edit = iptables_state.TableEdit(iptables_state.parse_save("*nat\n:POSTROUTING ACCEPT [0:0]\n", "nat", family))
    prefix = 24 if family == 4 else 64
    masquerade._ipt_setup(edit, [ip_interface(f"{ip}/{prefix}")], "CNI-x", masquerade.iptables_comment("n", "c"))
    nat = edit.rules("CNI-x") + edit.rules("POSTROUTING")
    return {"filter": filt, "nat": nat}


@pytest.mark.parametrize("family", FAMILIES)
def test_canonical_is_what_iptables_prints(family: Family) -> None:
    chain, target = f"PYCNI-T-{uuid.uuid4().hex[:8]}", f"PYCNI-T-{uuid.uuid4().hex[:8]}"
    for table, rules in _plugin_rules(family).items():
        rules = [_user_chain_targets(rule, target) for rule in rules]
        lines = [f"-N {chain}", f"-N {target}"]
        lines += [" ".join(quote(token) for token in ("-A", chain, *rule)) for rule in rules]
        try:
            restore(family, table, lines)
            printed = iptables_state.save(family, table).rules(chain)
            assert printed == [list(iptables_state.canonical(rule)) for rule in rules]
            state = iptables_state.save(family, table)
            assert all(state.has_rule(chain, rule) for rule in rules)
        finally:
            restore(family, table, [f"-F {chain}", f"-X {chain}", f"-X {target}"])


# -- DEL: exactly its own lines, also when racing -----------------------------------------


@pytest.mark.usefixtures("tool_path_only")
def test_delete_survives_a_concurrent_deletion(names: Names, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = IptablesBackend("CNI-ADMIN")
    backend.add(names.att())
    backend.add(names.att2())
    before = own_lines(names)
    victim = r.iptables_allow_rules(ip_address(names.ip4a), names.att().tag)[1]
    real_save, real_restore = iptables_state.save, iptables_state.save_restore.restore
    saves: list[tuple[int, str]] = []
    failures: list[str] = []

    def racing_save(family: Family, table: str) -> iptables_state.TableState:
        state = real_save(family, table)
        saves.append((family, table))
        if (family, table) == (4, "filter") and saves.count((4, "filter")) == 1:
            # another process deletes one of our rules after we read the table
            iptables.run(4, "-t", "filter", "-D", r.CNI_FORWARD, *victim)
        return state

    def recording_restore(family: Family, table: str, lines: Any) -> None:
        try:
            real_restore(family, table, lines)
        except iptables.IptablesError as exc:
            failures.append(str(exc))
            raise

    monkeypatch.setattr(iptables_state, "save", racing_save)
    monkeypatch.setattr(iptables_state.save_restore, "restore", recording_restore)
    backend.delete(names.att())
    assert saves.count((4, "filter")) == 2  # read again after the atomic restore failed
    assert len(failures) == 1 and "Bad rule" in failures[0]
    assert own_lines(names) == [line for line in before if names.att().tag not in line]


def test_chain_appearing_meanwhile_is_not_flushed(names: Names, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chain another process creates between our read and write is kept with its rules (-N, retry)."""
    real_save = iptables_state.save
    calls: list[int] = []

    def racing_save(family: Family, table: str) -> iptables_state.TableState:
        state = real_save(family, table)
        calls.append(family)
        if family == 4 and calls.count(4) == 1:
            iptables.run(4, "-t", "nat", "-N", names.chain)
            iptables.run(4, "-t", "nat", "-A", names.chain, "-d", "198.51.100.0/24", "-j", "RETURN")
        return state

    monkeypatch.setattr(iptables_state, "save", racing_save)
    masquerade.setup_masquerade(names.masq_addresses()[:1], names.net, "eth0", names.cid, backend="iptables")
    assert calls.count(4) == 2
    rules = iptables_state.save(4, "nat").rules(names.chain)
    assert ["-d", "198.51.100.0/24", "-j", "RETURN"] in rules and len(rules) == 3


# -- process starts ---------------------------------------------------------------------


@pytest.fixture
def starts(monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[str]]:
    """Counts iptables processes started (every subprocess goes through Popen); returns a take-and-reset."""
    started: list[str] = []
    real = subprocess.Popen

    class Counting(real):  # type: ignore[misc, valid-type]
        def __init__(self, args: Any, *rest: Any, **kw: Any) -> None:
            name = os.path.basename(str(args[0] if isinstance(args, list | tuple) else args).split()[0])
            if name in TOOLS:
                started.append(name)
            super().__init__(args, *rest, **kw)

    monkeypatch.setattr(subprocess, "Popen", Counting)

    def take() -> list[str]:
        out = list(started)
        started.clear()
        return out

    return take


@pytest.mark.usefixtures("tool_path_only")
def test_firewall_process_budget(names: Names, starts: Callable[[], list[str]]) -> None:
    backend = IptablesBackend("CNI-ADMIN")
    att = names.att()
    backend.add(att)
    assert sorted(starts()) == ["ip6tables-restore", "ip6tables-save", "iptables-restore", "iptables-save"]
    backend.add(att)  # nothing to change: one read per family
    assert sorted(starts()) == ["ip6tables-save", "iptables-save"]
    backend.check(att)
    assert sorted(starts()) == ["ip6tables-save", "iptables-save"]
    backend.delete(att)
    assert sorted(starts()) == ["ip6tables-restore", "ip6tables-save", "iptables-restore", "iptables-save"]
    backend.delete(att)  # gone: reads only (none where CNI-FORWARD holds no pod's rules at all)
    assert set(starts()) <= {"ip6tables-save", "iptables-save"}


@pytest.mark.usefixtures("tool_path_only")
def test_firewall_del_skips_a_family_holding_no_pod_rules(
    names: Names, starts: Callable[[], list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An IPv4-only cluster's DEL does not read ip6tables when its CNI-FORWARD has only the admin jump."""
    backend = IptablesBackend("CNI-ADMIN")
    att = names.att2()  # IPv4 only
    backend.add(att)
    starts()
    real, real_count = iptables.nft_rule_verdicts, iptables.nft_rule_count
    monkeypatch.setattr(iptables, "nft_rule_verdicts", lambda family, table, chain: (
        ["jump CNI-ADMIN"] if family == 6 else real(family, table, chain)))
    monkeypatch.setattr(iptables, "nft_rule_count", lambda family, table, chain: (
        1 if family == 6 else real_count(family, table, chain)))
    backend.delete(att)
    assert sorted(starts()) == ["iptables-restore", "iptables-save"]
    assert own_lines(names) == [line for line in own_lines(names) if names.cid2 not in line]


def _needs_iptables_nft() -> None:
    if iptables.variant(4) != "nf_tables" or iptables.variant(6) != "nf_tables":
        pytest.skip("iptables-legacy: no in-process path")


def test_firewall_process_budget_with_iptables_nft(names: Names, starts: Callable[[], list[str]]) -> None:
    _needs_iptables_nft()
    backend = IptablesBackend("CNI-ADMIN")
    att = Attachment(names.net, names.cid, "eth0", (ip_address(names.ip4a), ip_address(names.ip6a)))  # open
    backend.add(att)  # both families; may create the shared chains (a save and a restore each) or find them
    backend.delete(att)
    starts()
    backend.add(att)  # shared chains in place: its rules as one nfnetlink batch per family, no tool at all
    assert starts() == []
    backend.add(att)  # already there: the read-edit-write path finds nothing to change
    assert sorted(starts()) == ["ip6tables-save", "iptables-save"]
    before = own_lines(names)
    starts()  # own_lines ran iptables-save
    backend.delete(att)  # by handle, in-process
    assert starts() == []
    assert own_lines(names) == [line for line in before if att.tag not in line]
    starts()
    backend.delete(att)
    assert starts() == []
    backend.add(att)
    starts()
    assert own_lines(names) == before


def test_a_refused_nfnetlink_append_falls_back_to_one_restore(names: Names, starts: Callable[[], list[str]],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _needs_iptables_nft()
    backend = IptablesBackend("CNI-ADMIN")
    att = Attachment(names.net, names.cid, "eth0", (ip_address(names.ip4a), ip_address(names.ip6a)))
    backend.add(att)
    expected = own_lines(names)
    backend.delete(att)
    monkeypatch.setattr(iptables_backend, "_append_over_nfnetlink", lambda family, att, version: False)
    starts()
    backend.add(att)
    assert sorted(starts()) == ["ip6tables-restore", "iptables-restore"]
    assert own_lines(names) == expected
    backend.delete(att)


def test_in_process_delete_survives_a_concurrent_deletion(names: Names, monkeypatch: pytest.MonkeyPatch) -> None:
    """One of the attachment's rules deleted between the dump and the delete: the batch fails whole, read again."""
    _needs_iptables_nft()
    backend = IptablesBackend("CNI-ADMIN")
    backend.add(names.att())
    backend.add(names.att2())
    before = own_lines(names)
    victim = r.iptables_allow_rules(ip_address(names.ip4a), names.att().tag)[1]
    real = iptables_backend._tagged_handles
    reads: list[int] = []

    def racing(family: Family, tag: str) -> list[int]:
        handles = real(family, tag)
        reads.append(family)
        if family == 4 and reads.count(4) == 1:
            iptables.run(4, "-t", "filter", "-D", r.CNI_FORWARD, *victim)
        return handles

    monkeypatch.setattr(iptables_backend, "_tagged_handles", racing)
    backend.delete(names.att())
    assert reads.count(4) == 2
    assert own_lines(names) == [line for line in before if names.att().tag not in line]


def test_nft_rule_verdicts_reads_iptables_nft_chains(names: Names) -> None:
    if iptables.variant(4) != "nf_tables":
        pytest.skip("iptables-legacy: verdicts are not readable in-process")
    chain, other = f"PYCNI-T-{uuid.uuid4().hex[:8]}", f"PYCNI-T-{uuid.uuid4().hex[:8]}"
    lines = [f"-N {chain}", f"-N {other}", f"-A {chain} -m comment --comment {quote('a b')} -j {other}",
             f"-A {chain} -s 192.0.2.9/32 -j ACCEPT", f"-A {chain} -d 192.0.2.9/32 -j DROP", f"-A {chain} -j RETURN"]
    try:
        restore(4, "filter", lines)
        assert iptables.nft_rule_verdicts(4, "filter", chain) == [f"jump {other}", "accept", "drop", "return"]
        assert iptables.nft_rule_verdicts(4, "filter", f"{chain}-NONE") == []
    finally:
        restore(4, "filter", [f"-F {chain}", f"-X {chain}", f"-X {other}"])


def test_masquerade_process_budget(names: Names, starts: Callable[[], list[str]]) -> None:
    addresses = names.masq_addresses()
    masquerade.setup_masquerade(addresses, names.net, "eth0", names.cid, backend="iptables")
    assert sorted(starts()) == ["ip6tables-restore", "ip6tables-save", "iptables-restore", "iptables-save"]
    assert masquerade.missing_masquerade(addresses, names.net, "eth0", names.cid) == []
    assert sorted(starts()) == ["ip6tables-save", "iptables-save"]
    masquerade.teardown_masquerade(names.net, "eth0", names.cid, addresses)
    assert sorted(starts()) == ["ip6tables-restore", "ip6tables-save", "iptables-restore", "iptables-save"]
    assert iptables_state.save(4, "nat").has_chain(names.chain) is False
    starts()
    # iptables-nft: the per-container chain is gone, which is known without a tool
    if iptables.variant(4) == "nf_tables" and iptables.variant(6) == "nf_tables":
        masquerade.teardown_masquerade(names.net, "eth0", names.cid, addresses)
        assert starts() == []


def test_teardown_of_nftables_rules_starts_no_iptables(names: Names, starts: Callable[[], list[str]]) -> None:
    if iptables.variant(4) != "nf_tables" or iptables.variant(6) != "nf_tables":
        pytest.skip("the in-process answer needs iptables-nft")
    try:
        nft.list_json("tables")
    except nft.NftError:
        pytest.skip("needs libnftables")
    addresses = names.masq_addresses()
    assert masquerade.setup_masquerade(addresses, names.net, "eth0", names.cid, backend="nftables") == "nftables"
    masquerade.teardown_masquerade(names.net, "eth0", names.cid, addresses)
    assert masquerade.missing_masquerade(addresses, names.net, "eth0", names.cid) == addresses
    assert starts() == []
