"""portmap's nftables backend: one table, a map lookup per packet, owner tags on map elements.

Layout (``table inet pycni-portmap``; ``N`` = "n" + a hash of the network name)::

    map N_hostip4 { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service }
    map N_ports4  { type inet_proto . inet_service : ipv4_addr . inet_service }
    set N_masq4   { type ipv4_addr . ipv4_addr . inet_proto . inet_service; flags interval }
    (and N_hostip6, N_ports6, N_masq6)

    chain prerouting  { type nat hook prerouting priority dstnat;  fib daddr type local jump hostip_hostports
                                                                   fib daddr type local jump hostports }
    chain output      { type nat hook output priority -100;        (the same two rules) }
    chain postrouting { type nat hook postrouting priority srcnat; jump masquerading }
    chain hostip_hostports { <conditionsV4> dnat ip to ip daddr . meta l4proto . th dport map @N_hostip4
                             <conditionsV6> dnat ip6 to ip6 daddr . meta l4proto . th dport map @N_hostip6 }
    chain hostports        { <conditionsV4> meta nfproto ipv4 dnat ip to meta l4proto . th dport map @N_ports4
                             <conditionsV6> meta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @N_ports6 }
    chain masquerading     { ct status dnat ip saddr . ip daddr . meta l4proto . th dport @N_masq4 masquerade
                             ct status dnat ip6 saddr . ip6 daddr . meta l4proto . th dport @N_masq6 masquerade }

Why maps, and how ownership survives them. The reference adds a rule per
mapping, so every new connection to a local address walks all of them;
here it costs one hash lookup per network whatever the number of pods.
The reference's objection to maps is ownership: "delete the element for
10.1.0.3 only if container A added it". nft >= 1.0 keeps a comment on
every element, and each element carries its attachment's owner tag
(``pycni/portmap/<net>/<container id>/<ifname>``). DEL lists the table,
deletes the elements with its tag and nothing else, so it needs neither
runtimeConfig nor prevResult and works after a crash; GC deletes the
elements whose (container id, ifname) is not valid. A key is unique in
its map, so a second pod asking for a host port already mapped (on any
network) is refused at ADD instead of silently losing to the first rule.

Per-network maps exist because ``conditionsV4``/``conditionsV6`` belong
to a network's config: each network has its own lookup rules carrying its
conditions (in nft syntax), tagged ``pycni/portmap/N/<role> ...`` with a
hash of the conditions, and replaced when the conditions change. (The
reference flushes the shared base chains on every ADD, so the last ADD's
conditions apply to every container of every network.)

Hairpin and localhost: after DNAT, a packet whose source is in the pod's
subnet (the pod itself, or a neighbour on the same bridge whose reply
would bypass the host) or in 127.0.0.0/8 must be masqueraded; the masq set
holds ``source range . pod ip . proto . container port`` per mapping
(``0.0.0.0/0`` with ``masqAll``), and ``ct status dnat`` limits it to
DNATed connections. IPv6 has no localhost equivalent (::1 is never
routed). 127.0.0.1 also needs route_localnet on the pod-facing interface
(done by the plugin).

Consistency: every change is one nft transaction, and the read-decide-write
of ADD, DEL and GC runs under a host lock.

Lifetime: the table and its chains are never deleted, and a network's sets
and lookup rules stay when its last element goes (the reference keeps its
table and chains too); GC, told every valid attachment, removes an empty
network's sets and rules. Deleting them with the last pod made a node whose
pods come one at a time declare them again for each, and the kernel
re-register its conntrack hooks each time (``ct status dnat``): a walk of
the whole conntrack table.

The ``plan_*``, ``render_*`` and ``check_state`` functions are pure (state
in, transaction or problems out); ``nft_io.NftBackend`` is the I/O shell
around them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pycni.plugins.common import parse_owner_tag
from pycni.plugins.portmap.conf import (
    Attachment,
    Family,
    FamilyTarget,
    Forward,
    PortMapConf,
    masq_sources,
    short_hash,
)
from pycni.spec.errors import InvalidConfig

__all__ = [
    "FAMILY",
    "TABLE",
    "Element",
    "Plan",
    "Rule",
    "TableState",
    "check_state",
    "network_id",
    "parse_state",
    "plan_forward",
    "plan_remove",
    "render_forward",
    "render_remove",
]

FAMILY = "inet"
TABLE = "pycni-portmap"
HOSTIP_CHAIN = "hostip_hostports"
HOSTPORTS_CHAIN = "hostports"
MASQ_CHAIN = "masquerading"
BASE_TAG = "pycni/portmap base"
_T = f"{FAMILY} {TABLE}"

_BASE_CHAINS = (
    ("prerouting", "type nat hook prerouting priority -100 ;"),
    ("output", "type nat hook output priority -100 ;"),
    ("postrouting", "type nat hook postrouting priority 100 ;"),
)
_BASE_RULES = (
    ("prerouting", f"fib daddr type local jump {HOSTIP_CHAIN}"),
    ("prerouting", f"fib daddr type local jump {HOSTPORTS_CHAIN}"),
    ("output", f"fib daddr type local jump {HOSTIP_CHAIN}"),
    ("output", f"fib daddr type local jump {HOSTPORTS_CHAIN}"),
    ("postrouting", f"jump {MASQ_CHAIN}"),
)
_PROTO_NAMES = {6: "tcp", 17: "udp", 132: "sctp"}


# -- the table as read back ------------------------------------------------------


@dataclass(frozen=True)
class Element:
    """One set or map element: key (and map value) as nft tokens, and its comment."""

    set: str
    key: tuple[str, ...]
    value: tuple[str, ...] = ()
    comment: str = ""

    def key_text(self) -> str:
        return " . ".join(self.key)


@dataclass(frozen=True)
class Rule:
    chain: str
    handle: int
    comment: str = ""


@dataclass(frozen=True)
class TableState:
    exists: bool = False
    sets: frozenset[str] = frozenset()
    elements: tuple[Element, ...] = ()
    rules: tuple[Rule, ...] = ()

    def elements_of(self, names: Iterable[str]) -> list[Element]:
        wanted = set(names)
        return [e for e in self.elements if e.set in wanted]


def parse_state(items: Sequence[dict[str, Any]]) -> TableState:
    """The table from ``nft -j list table inet pycni-portmap`` (its "nftables" array)."""
    exists = False
    sets: set[str] = set()
    elements: list[Element] = []
    rules: list[Rule] = []
    for item in items:
        if "table" in item:
            exists = True
        for kind in ("set", "map"):
            obj = item.get(kind)
            if obj is not None:
                sets.add(obj["name"])
                for raw in obj.get("elem", []):
                    elements.append(_parse_element(obj["name"], raw, is_map=kind == "map"))
        rule = item.get("rule")
        if rule is not None:
            rules.append(Rule(rule["chain"], int(rule["handle"]), str(rule.get("comment", ""))))
    return TableState(exists, frozenset(sets), tuple(elements), tuple(rules))


def _parse_element(set_name: str, raw: Any, *, is_map: bool) -> Element:
    key_raw, value_raw = (raw[0], raw[1]) if is_map else (raw, None)
    comment = ""
    if isinstance(key_raw, dict) and "elem" in key_raw:
        comment = str(key_raw["elem"].get("comment", ""))
        key_raw = key_raw["elem"]["val"]
    value = _tokens(value_raw) if value_raw is not None else ()
    return Element(set_name, _tokens(key_raw), value, comment)


def _tokens(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, dict) and "concat" in raw:
        return tuple(_token(part) for part in raw["concat"])
    return (_token(raw),)


def _token(raw: Any) -> str:
    if isinstance(raw, dict):
        if "prefix" in raw:
            return f"{raw['prefix']['addr']}/{raw['prefix']['len']}"
        if "range" in raw:
            low, high = raw["range"]
            return f"{_token(low)}-{_token(high)}"
        raise ValueError(f"unexpected nft element expression {raw!r}")
    return str(raw)


# -- names -----------------------------------------------------------------------


def network_id(network: str) -> str:
    """Short, nft-safe prefix of one network's maps and sets."""
    return "n" + short_hash("portmap", network)


def _set_names(nid: str) -> dict[str, str]:
    return {f"{kind}{family}": f"{nid}_{kind}{family}" for kind in ("hostip", "ports", "masq") for family in (4, 6)}


def _set_decls(nid: str) -> list[str]:
    decls = []
    for family, addr in ((4, "ipv4_addr"), (6, "ipv6_addr")):
        target = f"{addr} . inet_service"
        decls.append(f"add map {_T} {nid}_hostip{family} {{ type {addr} . inet_proto . inet_service : {target} ; }}")
        decls.append(f"add map {_T} {nid}_ports{family} {{ type inet_proto . inet_service : {target} ; }}")
        decls.append(
            f"add set {_T} {nid}_masq{family} {{ type {addr} . {addr} . inet_proto . inet_service ; flags interval ; }}"
        )
    return decls


def _network_rules(nid: str, network: str, conf: PortMapConf) -> list[tuple[str, str, str]]:
    """(chain, rule body, comment) of a network's lookup rules, conditions included."""
    out = []
    families: tuple[tuple[Family, str], ...] = ((4, "ip"), (6, "ip6"))
    for family, ip in families:
        conditions = " ".join(conf.conditions(family))
        cond = f"{conditions} " if conditions else ""
        stamp = f"cond={short_hash(conditions, length=8)} net={network}"
        out.append(
            (
                HOSTIP_CHAIN,
                f"{cond}dnat {ip} to {ip} daddr . meta l4proto . th dport map @{nid}_hostip{family}",
                f"pycni/portmap/{nid}/hostip{family} {stamp}",
            )
        )
        out.append(
            (
                HOSTPORTS_CHAIN,
                f"{cond}meta nfproto ipv{family} dnat {ip} to meta l4proto . th dport map @{nid}_ports{family}",
                f"pycni/portmap/{nid}/ports{family} {stamp}",
            )
        )
        out.append(
            (
                MASQ_CHAIN,
                f"ct status dnat {ip} saddr . {ip} daddr . meta l4proto . th dport @{nid}_masq{family} masquerade",
                f"pycni/portmap/{nid}/masq{family} net={network}",
            )
        )
    return [(chain, body, _clip(comment)) for chain, body, comment in out]


def _clip(comment: str) -> str:
    return comment.replace('"', "").encode()[:128].decode(errors="ignore")


def _comment(text: str) -> str:
    return f'comment "{_clip(text)}"'


# -- ADD -----------------------------------------------------------------------


def desired_elements(nid: str, tag: str, targets: Sequence[FamilyTarget], conf: PortMapConf) -> list[Element]:
    """The elements one attachment owns: a DNAT entry per mapping, masquerade entries when snat."""
    names = _set_names(nid)
    out: list[Element] = []
    for target in targets:
        family = target.family
        pod = str(target.ip)
        sources = masq_sources(target, conf, loopback="127.0.0.0/8")
        for m in target.mappings:
            value = (pod, str(m.container_port))
            if m.host_ip is not None and not m.host_ip.is_unspecified:
                key: tuple[str, ...] = (str(m.host_ip), m.protocol, str(m.host_port))
                out.append(Element(names[f"hostip{family}"], key, value, tag))
            else:
                out.append(Element(names[f"ports{family}"], (m.protocol, str(m.host_port)), value, tag))
            for source in sources:
                masq = Element(names[f"masq{family}"], (source, pod, m.protocol, str(m.container_port)), (), tag)
                if masq not in out:
                    out.append(masq)
    return out


@dataclass(frozen=True)
class Plan:
    """A transaction: ``lines`` of nft script (tables, chains, rules, sets), then element deletions and additions.

    A plan without ``lines`` changes only elements, which the backend writes without libnftables."""

    lines: tuple[str, ...] = ()
    deletes: tuple[Element, ...] = ()
    adds: tuple[Element, ...] = ()

    def script(self) -> str:
        out = list(self.lines)
        out += [f"delete element {_T} {e.set} {{ {e.key_text()} }}" for e in self.deletes]
        for e in self.adds:
            value = f" : {' . '.join(e.value)}" if e.value else ""
            out.append(f"add element {_T} {e.set} {{ {e.key_text()} {_comment(e.comment)}{value} }}")
        return "\n".join(out) + "\n" if out else ""


def render_forward(state: TableState, att: Attachment, targets: Sequence[FamilyTarget], conf: PortMapConf) -> str:
    """The transaction that installs ``att``'s mappings on top of ``state`` (``plan_forward``, as nft script)."""
    return plan_forward(state, att, targets, conf).script()


def plan_forward(state: TableState, att: Attachment, targets: Sequence[FamilyTarget], conf: PortMapConf) -> Plan:
    """What installs ``att``'s mappings on top of ``state``.

    Elements the attachment already owns are replaced (a repeated ADD).
    A host port another attachment holds raises InvalidConfig.
    """
    nid = network_id(att.network)
    tag = att.tag
    wanted = desired_elements(nid, tag, targets, conf)
    _check_conflicts(state, wanted, tag)
    present = {(r.chain, r.comment) for r in state.rules}
    missing_base = [(chain, body) for chain, body in _BASE_RULES
                    if (chain, _clip(f"{BASE_TAG}: {body}")) not in present]
    lines = []
    # The base rules jump to every chain, so with all of them and this network's sets read back, the
    # declarations would change nothing: left out, the transaction is a few lines instead of twenty.
    if not state.exists or missing_base or not set(_set_names(nid).values()) <= state.sets:
        lines.append(f"add table {_T}")
        for chain in (HOSTIP_CHAIN, HOSTPORTS_CHAIN, MASQ_CHAIN):
            lines.append(f"add chain {_T} {chain}")
        for chain, spec in _BASE_CHAINS:
            lines.append(f"add chain {_T} {chain} {{ {spec} }}")
        for chain, body in missing_base:
            lines.append(f"add rule {_T} {chain} {body} {_comment(f'{BASE_TAG}: {body}')}")
        lines += _set_decls(nid)
    expected = _network_rules(nid, att.network, conf)
    expected_ids = {(chain, comment) for chain, _body, comment in expected}
    for rule in state.rules:
        if rule.comment.startswith(f"pycni/portmap/{nid}/") and (rule.chain, rule.comment) not in expected_ids:
            lines.append(f"delete rule {_T} {rule.chain} handle {rule.handle}")  # stale conditions
    for chain, body, comment in expected:
        if (chain, comment) not in present:
            lines.append(f"add rule {_T} {chain} {body} {_comment(comment)}")
    old = tuple(e for e in state.elements if e.comment == tag)
    return Plan(tuple(lines), old, tuple(wanted))


def _check_conflicts(state: TableState, wanted: Sequence[Element], tag: str) -> None:
    """Refuse a DNAT key some other attachment holds, in this network's maps or another's."""
    held: dict[tuple[str, tuple[str, ...]], Element] = {}
    for element in state.elements:
        kind = element.set.split("_", 1)[-1]
        if kind.startswith(("hostip", "ports")):
            held[(kind, element.key)] = element
    for element in wanted:
        kind = element.set.split("_", 1)[-1]
        owner = held.get((kind, element.key))
        if owner is None or owner.comment == tag:
            continue
        parsed = parse_owner_tag(owner.comment)
        who = f"container {parsed[2]} ({parsed[3]}) of network {parsed[1]}" if parsed else repr(owner.comment)
        where = f"{element.key[0]}:" if kind.startswith("hostip") else ""
        proto, port = element.key[-2], element.key[-1]
        raise InvalidConfig(
            f"runtimeConfig.portMappings: {proto} host port {where}{port} is already forwarded to {who}"
        )


# -- DEL and GC -------------------------------------------------------------------


def render_remove(state: TableState, network: str, owned: Callable[[str], bool], *,
                  drop_empty: bool = False) -> tuple[str, list[Element]]:
    """``plan_remove`` as nft script ("" when there is nothing to do), and the removed elements."""
    plan = plan_remove(state, network, owned, drop_empty=drop_empty)
    return plan.script(), list(plan.deletes)


def plan_remove(state: TableState, network: str, owned: Callable[[str], bool], *,
                drop_empty: bool = False) -> Plan:
    """What removes the elements of ``network`` whose comment ``owned`` accepts (``deletes``).

    The table, its chains and a network's sets and lookup rules stay when
    their last element goes, as the reference's table and chains do: a
    node whose pods come and go one at a time would otherwise delete and
    declare them again for every pod (~1.5 ms of libnftables each way, and
    the kernel registering its conntrack hooks anew, which walks the whole
    conntrack table). ``drop_empty`` (GC, which
    knows every valid attachment) also removes the network's lookup rules
    and sets once they hold nothing. A removal that empties its network
    also removes other networks' empty maps and rules: only the network
    emptied last keeps them. An empty plan: nothing to do.
    """
    nid = network_id(network)
    names = set(_set_names(nid).values())
    removed = tuple(e for e in state.elements_of(names) if owned(e.comment))
    emptied = len(removed) == len(state.elements_of(names))
    # Runtimes that drop a network without a GC (podman's CNI backend) would leave its empty declarations
    # for ever: a DEL that empties its network drops the other networks' empty ones (rarely any).
    idle = sorted(other for other in _declared_networks(state) if other != nid and not state.elements_of(
        set(_set_names(other).values()))) if removed and emptied else []
    dropped = ([nid] if drop_empty and emptied and names & state.sets else []) + idle
    if not dropped:
        return Plan((), removed)
    lines = [f"delete element {_T} {e.set} {{ {e.key_text()} }}" for e in removed]
    for dropped_nid in dropped:
        lines += _network_teardown(state, dropped_nid)
    return _Teardown(tuple(lines), removed)


def _declared_networks(state: TableState) -> set[str]:
    """The ids of the networks whose maps the table holds."""
    return {name.split("_", 1)[0] for name in state.sets if "_" in name and name.startswith("n")}


def _network_teardown(state: TableState, nid: str) -> list[str]:
    """nft script removing network ``nid``'s lookup rules, then its maps and sets."""
    lines = [f"delete rule {_T} {rule.chain} handle {rule.handle}" for rule in state.rules
             if rule.comment.startswith(f"pycni/portmap/{nid}/")]
    declared = set(_set_names(nid).values()) & state.sets
    return lines + [f"delete {'set' if 'masq' in name else 'map'} {_T} {name}" for name in sorted(declared)]


class _Teardown(Plan):
    """A removal whose ``lines`` already delete what ``deletes`` lists (elements, then their sets or table)."""

    def script(self) -> str:
        return "\n".join(self.lines) + "\n"


def forwards_from(elements: Iterable[Element]) -> list[Forward]:
    """The mappings DNAT elements stand for (masquerade elements are skipped)."""
    out = []
    for e in elements:
        kind = e.set.split("_", 1)[-1]
        if not kind.startswith(("hostip", "ports")) or len(e.value) != 2:
            continue
        family: Family = 4 if kind.endswith("4") else 6
        host_ip = e.key[0] if kind.startswith("hostip") else None
        proto = _PROTO_NAMES.get(int(e.key[-2]), e.key[-2]) if e.key[-2].isdigit() else e.key[-2]
        out.append(Forward(family, proto, int(e.key[-1]), e.value[0], int(e.value[1]), host_ip))
    return sorted(set(out))


# -- CHECK -----------------------------------------------------------------------


def check_state(state: TableState, att: Attachment, targets: Sequence[FamilyTarget], conf: PortMapConf) -> list[str]:
    """What is missing for ``att``'s mappings to work; [] when all is in place."""
    if not state.exists:
        return [f"table {_T} does not exist"]
    problems = []
    present = {(r.chain, r.comment) for r in state.rules}
    for chain, body in _BASE_RULES:
        if (chain, _clip(f"{BASE_TAG}: {body}")) not in present:
            problems.append(f"rule '{body}' is missing from chain {chain}")
    nid = network_id(att.network)
    for chain, body, comment in _network_rules(nid, att.network, conf):
        if (chain, comment) not in present:
            problems.append(f"rule '{body}' is missing from chain {chain}")
    have = {(e.set, e.key, e.value) for e in state.elements if e.comment == att.tag}
    for element in desired_elements(nid, att.tag, targets, conf):
        if (element.set, element.key, element.value) not in have:
            value = f" : {' . '.join(element.value)}" if element.value else ""
            problems.append(f"element {{ {element.key_text()}{value} }} of {att.tag} is missing from {element.set}")
    return problems
