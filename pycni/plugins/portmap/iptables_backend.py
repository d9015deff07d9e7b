"""portmap's iptables backend: the reference's chain layout, for tooling that reads iptables.

Layout (table nat, for iptables and ip6tables alike)::

    PREROUTING, OUTPUT:   -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
    POSTROUTING (first):  -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
    CNI-HOSTPORT-SETMARK: -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
    CNI-HOSTPORT-MASQ:    -m comment --comment "CNI portfwd requiring masquerade" -m mark --mark 0x2000/0x2000
                          -j MASQUERADE
    CNI-HOSTPORT-DNAT:    one entry rule per protocol (ports in chunks of 15, multiport's limit):
                          -p tcp -m comment --comment 'dnat name: "<net>" id: "<cid>"' -m comment --comment <tag>
                          -m multiport --dports 8080,8443 [conditions] -j CNI-DN-<hash>
    CNI-DN-<hash>:        per mapping, when snat: -p tcp [-d hostIP] -s <pod subnet> --dport 8080 -j <mark chain>
                          (IPv4 also -s 127.0.0.1), then
                          -p tcp [-d hostIP] --dport 8080 -j DNAT --to-destination 10.1.0.5:80

Every rule of an attachment carries its owner tag as a second comment; the
reference's ``dnat name: ... id: ...`` comment stays on the entry rules so
existing tooling still recognises them. Unlike the reference, the
``CNI-DN-`` hash covers the ifname too (sha512 of network, container ID and
ifname): two attachments of one container get separate chains, and DEL
finds its chain from the attachment alone, without runtimeConfig. GC reads
the owner tags inside ``CNI-DN-`` chains. As in the reference, the
``CNI-HOSTPORT-*`` chains and the jumps to them are created once and never
removed (they may be shared with the Go plugin).

Each change is one ``iptables-restore --noflush`` per family (atomic), and
the list-decide-restore steps run under a host lock.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pycni.plugins.common import owner_tag, parse_owner_tag
from pycni.plugins.portmap.conf import Attachment, FamilyTarget, Forward, PortMapConf, forwards_of, masq_sources
from pycni.spec.errors import CniError

__all__ = [
    "DNAT_CHAIN",
    "MASQ_CHAIN",
    "SETMARK_CHAIN",
    "IptablesBackend",
    "NatTable",
    "check_table",
    "dn_chain_name",
    "parse_nat",
    "render_forward",
    "render_remove",
]

Family = Literal[4, 6]
NAT = "nat"
DNAT_CHAIN = "CNI-HOSTPORT-DNAT"
SETMARK_CHAIN = "CNI-HOSTPORT-SETMARK"
MASQ_CHAIN = "CNI-HOSTPORT-MASQ"
MARK_COMMENT = "CNI portfwd masquerade mark"
MASQ_COMMENT = "CNI portfwd requiring masquerade"
_MULTIPORT_MAX = 15


@dataclass(frozen=True)
class NatRule:
    chain: str
    args: tuple[str, ...]  # everything after "-A <chain>"
    line: str  # as iptables -S printed it

    def jumps_to(self, target: str) -> bool:
        return _value(self.args, "-j") == target

    def comments(self) -> list[str]:
        return [self.args[i + 1] for i, arg in enumerate(self.args[:-1]) if arg == "--comment"]


@dataclass(frozen=True)
class NatTable:
    chains: frozenset[str] = frozenset()
    rules: tuple[NatRule, ...] = ()

    def rules_of(self, chain: str) -> list[NatRule]:
        return [r for r in self.rules if r.chain == chain]


def parse_nat(lines: Sequence[str]) -> NatTable:
    """The nat table from ``iptables -t nat -S`` lines."""
    chains: set[str] = set()
    rules: list[NatRule] = []
    for line in lines:
        tokens = shlex.split(line)
        if len(tokens) >= 2 and tokens[0] in ("-N", "-P"):
            chains.add(tokens[1])
        elif len(tokens) >= 2 and tokens[0] == "-A":
            rules.append(NatRule(tokens[1], tuple(tokens[2:]), line))
    return NatTable(frozenset(chains), tuple(rules))


def _value(args: Sequence[str], flag: str) -> str | None:
    for i, arg in enumerate(args[:-1]):
        if arg == flag:
            return args[i + 1]
    return None


def dn_chain_name(att: Attachment) -> str:
    digest = hashlib.sha512("\0".join((att.network, att.container_id, att.ifname)).encode()).hexdigest()
    return "CNI-DN-" + digest[:21]


def dnat_comment(att: Attachment) -> str:
    return f'dnat name: "{att.network}" id: "{att.container_id}"'[:255]


def _q(tokens: Sequence[str]) -> str:
    from pycni.net.firewall.iptables.save_restore import quote

    return " ".join(quote(t) for t in tokens)


def _mark(conf: PortMapConf) -> str:
    bit = 1 << conf.mark_masq_bit
    return f"{bit:#x}/{bit:#x}"


# -- ADD ------------------------------------------------------------------------


def _top_level(table: NatTable, conf: PortMapConf) -> list[str]:
    lines = []
    if DNAT_CHAIN not in table.chains:
        lines.append(f"-N {DNAT_CHAIN}")
    for base in ("PREROUTING", "OUTPUT"):
        if not any(r.jumps_to(DNAT_CHAIN) for r in table.rules_of(base)):
            lines.append(f"-A {base} -m addrtype --dst-type LOCAL -j {DNAT_CHAIN}")
    if conf.snat and not conf.external_set_mark_chain:
        mark = _mark(conf)
        if SETMARK_CHAIN not in table.chains:
            lines.append(f"-N {SETMARK_CHAIN}")
        if not any(_value(r.args, "--set-xmark") == mark for r in table.rules_of(SETMARK_CHAIN)):
            comment = _q(["-m", "comment", "--comment", MARK_COMMENT])
            lines.append(f"-A {SETMARK_CHAIN} {comment} -j MARK --set-xmark {mark}")
        if MASQ_CHAIN not in table.chains:
            lines.append(f"-N {MASQ_CHAIN}")
        if not any(_value(r.args, "--mark") == mark for r in table.rules_of(MASQ_CHAIN)):
            comment = _q(["-m", "comment", "--comment", MASQ_COMMENT])
            lines.append(f"-A {MASQ_CHAIN} {comment} -m mark --mark {mark} -j MASQUERADE")
        if not any(r.jumps_to(MASQ_CHAIN) for r in table.rules_of("POSTROUTING")):
            lines.append(f"-I POSTROUTING 1 {_q(['-m', 'comment', '--comment', MASQ_COMMENT])} -j {MASQ_CHAIN}")
    return lines


def render_forward(table: NatTable, att: Attachment, target: FamilyTarget, conf: PortMapConf) -> list[str]:
    """Restore lines installing ``target``'s mappings (replacing the attachment's earlier ones)."""
    chain = dn_chain_name(att)
    tag = ["-m", "comment", "--comment", att.tag]
    lines = _top_level(table, conf)
    lines += [f"-D {DNAT_CHAIN} {_q(r.args)}" for r in table.rules_of(DNAT_CHAIN) if r.jumps_to(chain)]
    lines.append(f":{chain} - [0:0]")  # created, or flushed if it exists
    mark_chain = conf.external_set_mark_chain or SETMARK_CHAIN
    sources = masq_sources(target, conf, loopback="127.0.0.1")
    for m in target.mappings:
        match = ["-p", m.protocol]
        if m.host_ip is not None and not m.host_ip.is_unspecified:
            match += ["-d", str(m.host_ip)]
        for source in sources:
            lines.append(f"-A {chain} {_q([*match, '-s', source, '--dport', str(m.host_port), *tag])} -j {mark_chain}")
        pod = str(target.ip) if target.family == 4 else f"[{target.ip}]"
        dnat = [*match, "--dport", str(m.host_port), *tag]
        lines.append(f"-A {chain} {_q(dnat)} -j DNAT --to-destination {pod}:{m.container_port}")
    by_protocol: dict[str, list[int]] = {}
    for m in target.mappings:
        ports = by_protocol.setdefault(m.protocol, [])
        if m.host_port not in ports:
            ports.append(m.host_port)
    for protocol in sorted(by_protocol):
        ports = by_protocol[protocol]
        for start in range(0, len(ports), _MULTIPORT_MAX):
            chunk = ",".join(str(p) for p in ports[start : start + _MULTIPORT_MAX])
            entry = ["-p", protocol, "-m", "comment", "--comment", dnat_comment(att), *tag]
            entry += ["-m", "multiport", "--dports", chunk, *conf.conditions(target.family)]
            lines.append(f"-A {DNAT_CHAIN} {_q(entry)} -j {chain}")
    return lines


# -- DEL, GC, CHECK --------------------------------------------------------------------


def chain_forwards(table: NatTable, chain: str, family: Family) -> list[Forward]:
    """The mappings the DNAT rules of ``chain`` implement."""
    out = []
    for rule in table.rules_of(chain):
        if _value(rule.args, "-j") != "DNAT":
            continue
        destination, protocol, port = (_value(rule.args, k) for k in ("--to-destination", "-p", "--dport"))
        if destination is None or protocol is None or port is None:
            continue
        pod, _, container_port = destination.rpartition(":")
        host_ip = _value(rule.args, "-d")
        out.append(
            Forward(
                family,
                protocol,
                int(port),
                pod.strip("[]"),
                int(container_port),
                host_ip.split("/")[0] if host_ip else None,
            )
        )
    return sorted(set(out))


def render_remove(table: NatTable, chain: str) -> list[str]:
    """Restore lines deleting ``chain`` and the entry rules that jump to it ([] when it is gone)."""
    if chain not in table.chains:
        return []
    lines = [f"-D {DNAT_CHAIN} {_q(r.args)}" for r in table.rules_of(DNAT_CHAIN) if r.jumps_to(chain)]
    return [*lines, f"-F {chain}", f"-X {chain}"]


def stale_chains(table: NatTable, network: str, valid: set[tuple[str, str]]) -> list[str]:
    """``CNI-DN-`` chains whose owner tag names ``network`` and an attachment not in ``valid``."""
    label = (parse_owner_tag(owner_tag("portmap", network, "c", "i")) or ("", "", "", ""))[1]
    out = []
    for chain in sorted(table.chains):
        if not chain.startswith("CNI-DN-"):
            continue
        owners = {parse_owner_tag(c) for r in table.rules_of(chain) for c in r.comments()} - {None}
        for owner in owners:
            assert owner is not None
            plugin, net, container_id, ifname = owner
            if plugin == "portmap" and net == label and (container_id, ifname) not in valid:
                out.append(chain)
                break
    return out


def check_table(table: NatTable, att: Attachment, target: FamilyTarget, conf: PortMapConf) -> list[str]:
    """What is missing for ``target``'s mappings; [] when all is in place."""
    problems = []
    chain = dn_chain_name(att)
    if DNAT_CHAIN not in table.chains:
        problems.append(f"chain {DNAT_CHAIN} does not exist")
    for base in ("PREROUTING", "OUTPUT"):
        if not any(r.jumps_to(DNAT_CHAIN) for r in table.rules_of(base)):
            problems.append(f"no rule in {base} jumps to {DNAT_CHAIN}")
    if conf.snat and not conf.external_set_mark_chain:
        if not any(_value(r.args, "--set-xmark") == _mark(conf) for r in table.rules_of(SETMARK_CHAIN)):
            problems.append(f"the mark rule of {SETMARK_CHAIN} is missing")
        if not any(r.jumps_to(MASQ_CHAIN) for r in table.rules_of("POSTROUTING")):
            problems.append(f"no rule in POSTROUTING jumps to {MASQ_CHAIN}")
    if chain not in table.chains:
        return [*problems, f"chain {chain} of {att.tag} does not exist"]
    have = set(chain_forwards(table, chain, target.family))
    for forward in forwards_of([target]):
        if forward not in have:
            problems.append(f"DNAT rule for {forward.protocol} port {forward.host_port} is missing from {chain}")
    entry_ports: set[tuple[str, str]] = set()
    for rule in table.rules_of(DNAT_CHAIN):
        if rule.jumps_to(chain):
            protocol, ports = _value(rule.args, "-p"), _value(rule.args, "--dports") or ""
            entry_ports |= {(protocol or "", p) for p in ports.split(",")}
    for m in target.mappings:
        if (m.protocol, str(m.host_port)) not in entry_ports:
            problems.append(f"no rule in {DNAT_CHAIN} sends {m.protocol} port {m.host_port} to {chain}")
    return problems


# -- the I/O shell --------------------------------------------------------------------


class IptablesRunner(Protocol):
    """What the backend needs from pycni.net (a fake in tests)."""

    def list_nat(self, family: Family) -> list[str] | None: ...  # None: the tool/table is unusable

    def restore(self, family: Family, lines: Sequence[str]) -> None: ...


class _KernelRunner:
    def list_nat(self, family: Family) -> list[str] | None:
        from pycni.net.firewall.iptables import tool as iptables

        lines = iptables.list_rules(family, NAT)
        return lines or None

    def restore(self, family: Family, lines: Sequence[str]) -> None:
        from pycni.net.firewall.iptables.save_restore import restore

        restore(family, NAT, lines)


class IptablesBackend:
    """forward / check / unforward / gc over iptables and ip6tables."""

    def __init__(self, runner: IptablesRunner | None = None, lock: Callable[[], Any] | None = None) -> None:
        self._ipt = runner or _KernelRunner()
        self._lock = lock or _default_lock

    def _table(self, family: Family) -> NatTable | None:
        lines = self._ipt.list_nat(family)
        return None if lines is None else parse_nat(lines)

    def forward(self, att: Attachment, targets: Sequence[FamilyTarget], conf: PortMapConf) -> None:
        with self._lock():
            for target in targets:
                table = self._table(target.family)
                if table is None:
                    tool = "iptables" if target.family == 4 else "ip6tables"
                    raise CniError(f"portmap: {tool} cannot list the nat table (IPv{target.family} ports)")
                self._ipt.restore(target.family, render_forward(table, att, target, conf))

    def check(self, att: Attachment, targets: Sequence[FamilyTarget], conf: PortMapConf) -> None:
        for target in targets:
            table = self._table(target.family) or NatTable()
            problems = check_table(table, att, target, conf)
            if problems:
                raise CniError(
                    f"portmap: IPv{target.family} iptables rules of {att.tag} are incomplete: {problems[0]}",
                    "; ".join(problems),
                )

    def unforward(self, att: Attachment) -> list[Forward]:
        chain = dn_chain_name(att)
        return self._remove(lambda table: [chain] if chain in table.chains else [])

    def gc(self, network: str, valid: set[tuple[str, str]]) -> list[Forward]:
        return self._remove(lambda table: stale_chains(table, network, valid))

    def _remove(self, pick: Callable[[NatTable], list[str]]) -> list[Forward]:
        removed: list[Forward] = []
        families: tuple[Family, ...] = (4, 6)
        for family in families:
            table = self._table(family)
            if table is None or not pick(table):
                continue
            with self._lock():
                table = self._table(family) or NatTable()
                lines = []
                for chain in pick(table):
                    removed += chain_forwards(table, chain, family)
                    lines += render_remove(table, chain)
                self._ipt.restore(family, lines)
        return removed


def _default_lock() -> Any:
    from pycni.rundir import host_lock

    return host_lock("portmap-iptables")
