"""IP masquerade for container addresses (``ipMasq`` of bridge and ptp).

Traffic from a container address to anything outside its own subnet
(multicast excepted) leaves the host with the host's address. Two
backends, laid out like the reference plugins' so that pycni and the Go
plugins can tear down each other's rules:

- nftables: table ``inet cni_plugins_masquerade``; base chain
  ``postrouting`` (nat, srcnat) returns for multicast and jumps to
  ``masq_checks``, which holds one rule per address::

      ip saddr 10.22.0.5 ip daddr != 10.22.0.0/16 masquerade comment "<tag>, net: N, if: I, id: C"

  ``<tag>`` is ``<hash16(network)>-<hash16(ifname:container id)>``: DEL
  removes exactly one attachment's rules and GC finds a network's rules.
- iptables: per container chain ``CNI-<hash24(network + container id)>``
  in ``nat`` (``-d <subnet> -j ACCEPT``, then ``! -d <multicast> -j
  MASQUERADE``) and one ``POSTROUTING -s <ip> -j <chain>`` per address, all
  commented ``name: "<network>" id: "<container id>"``.

Backend choice (``backend=None``): nftables when libnftables is usable,
else iptables. The reference prefers iptables; we prefer nftables because
a setup is one in-process atomic transaction, and its rules carry the
interface name, so DEL and GC are exact per attachment (the iptables
layout is per container). Teardown and GC always try both backends, so a
config that switched backends, or rules made by the Go plugins, are still
removed; a backend that is not usable on this host is skipped. Each
iptables operation reads a family's nat table once and writes it at most
once (``iptables.state``); teardown skips a family whose
per-container chain provably does not exist (iptables-nft, read
in-process), so tearing down nftables-made rules starts no iptables process.

The table, its base chain and ``masq_checks`` are shared by every
attachment and never deleted (as in the reference). The reference rewrites
the base chain's rules on every ADD; here an ADD adds only its own rule
when ``masq_checks`` exists and the base chain holds exactly what this
process last wrote there (compared as the kernel encodes the rules, one
dump), and rewrites them otherwise. That one rule goes in as an nfnetlink
batch encoded as nft encodes it (``nft_rules``), without libnftables'
cache of the whole ruleset. Finding an
attachment's rules reads only their handles and comments, with one
nfnetlink dump (``nft_dump``): a libnftables listing renders every rule of
every pod on the node to JSON, on every ADD and DEL.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from functools import partial
from ipaddress import IPv4Interface, IPv6Interface, ip_network
from typing import Any, Literal

from pycni.net.errors import NetError
from pycni.net.firewall import nft, nft_dump, nft_rules
from pycni.net.firewall.iptables import tool as iptables
from pycni.net.firewall.iptables.state import TableEdit, TableState, chain_known_missing, change, save

__all__ = [
    "MASQ_CHAIN",
    "TABLE",
    "Backend",
    "choose_backend",
    "gc_masquerade",
    "iptables_chain",
    "iptables_comment",
    "missing_masquerade",
    "nft_comment",
    "nft_setup_commands",
    "setup_masquerade",
    "teardown_masquerade",
]

IPInterface = IPv4Interface | IPv6Interface
Backend = Literal["iptables", "nftables"]

TABLE = "cni_plugins_masquerade"
MASQ_CHAIN = "masq_checks"
_POSTROUTING = "postrouting"
_SRCNAT_PRIORITY = 100
_COMMENT_MAX = 128  # nft's limit on a comment, in bytes
_MULTICAST = {4: "224.0.0.0/4", 6: "ff00::/8"}
_IPT_COMMENT = re.compile(r'^name: "(?P<network>[^"]*)" id: "(?P<cid>[^"]*)"$')
_IPT_CHAIN = re.compile(r"^CNI-[0-9a-f]{24}$")


# -- names and tags (pure) ----------------------------------------------------


def _hash(text: str, length: int) -> str:
    return hashlib.sha512(text.encode()).hexdigest()[:length]


def _network_tag(network: str) -> str:
    return _hash(network, 16)


def _instance_tag(network: str, ifname: str, container_id: str) -> str:
    return f"{_network_tag(network)}-{_hash(f'{ifname}:{container_id}', 16)}"


def nft_comment(network: str, ifname: str, container_id: str) -> str:
    """The comment of an attachment's nft rules: the tag, then a readable (possibly truncated) description."""
    names = (s.replace('"', "") for s in (network, ifname, container_id))
    text = "{}, net: {}, if: {}, id: {}".format(_instance_tag(network, ifname, container_id), *names)
    return text.encode()[:_COMMENT_MAX].decode(errors="ignore")


def iptables_chain(network: str, container_id: str) -> str:
    """The reference's per-container chain name: ``CNI-`` + 24 hex digits."""
    return "CNI-" + _hash(network + container_id, 24)


def iptables_comment(network: str, container_id: str) -> str:
    return f'name: "{network}" id: "{container_id}"'


# -- nftables -----------------------------------------------------------------


def _obj(**fields: Any) -> dict[str, Any]:
    return {"family": "inet", "table": TABLE, **fields}


def _match(protocol: str, field: str, op: str, right: Any) -> dict[str, Any]:
    return {"match": {"op": op, "left": {"payload": {"protocol": protocol, "field": field}}, "right": right}}


def _prefix(network: str) -> dict[str, Any]:
    net = ip_network(network)
    return {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}


def _masq_rule(addr: IPInterface, comment: str) -> dict[str, Any]:
    proto = "ip" if addr.version == 4 else "ip6"
    expr = [
        _match(proto, "saddr", "==", str(addr.ip)),
        _match(proto, "daddr", "!=", _prefix(str(addr.network))),
        {"masquerade": None},
    ]
    return {"add": {"rule": _obj(chain=MASQ_CHAIN, expr=expr, comment=comment)}}


def _nft_rule_commands(
    addresses: Sequence[IPInterface], network: str, ifname: str, container_id: str, stale_handles: Iterable[int]
) -> list[dict[str, Any]]:
    commands = [{"delete": {"rule": _obj(chain=MASQ_CHAIN, handle=h)}} for h in stale_handles]
    comment = nft_comment(network, ifname, container_id)
    return commands + [_masq_rule(addr, comment) for addr in addresses]


def nft_setup_commands(
    addresses: Sequence[IPInterface], network: str, ifname: str, container_id: str, stale_handles: Iterable[int] = ()
) -> list[dict[str, Any]]:
    """The one transaction of an nftables setup: table and chains, stale rules out, one rule per address."""
    base = _obj(name=_POSTROUTING, type="nat", hook="postrouting", prio=_SRCNAT_PRIORITY, policy="accept")
    commands: list[dict[str, Any]] = [
        {"add": {"table": {"family": "inet", "name": TABLE}}},
        {"add": {"chain": _obj(name=MASQ_CHAIN)}},
        {"add": {"chain": base}},
        {"flush": {"chain": _obj(name=_POSTROUTING)}},
    ]
    for family, proto in ((4, "ip"), (6, "ip6")):
        expr = [_match(proto, "daddr", "==", _prefix(_MULTICAST[family])), {"return": None}]
        commands.append({"add": {"rule": _obj(chain=_POSTROUTING, expr=expr)}})
    commands.append({"add": {"rule": _obj(chain=_POSTROUTING, expr=[{"goto": {"target": MASQ_CHAIN}}])}})
    return commands + _nft_rule_commands(addresses, network, ifname, container_id, stale_handles)


def _nft_rules() -> list[dict[str, Any]]:
    return nft.rules("inet", TABLE, MASQ_CHAIN)


def _nft_tagged() -> list[tuple[int, str]]:
    """(handle, comment) of every rule in ``masq_checks``: one nfnetlink dump, not a libnftables listing."""
    try:
        return nft_dump.rule_comments("inet", TABLE, MASQ_CHAIN)
    except NetError:
        return [(int(r["handle"]), str(r.get("comment", ""))) for r in _nft_rules()]


def _nft_add_rules(addresses: Sequence[IPInterface], comment: str, stale: Sequence[int]) -> bool:
    """The attachment's rules into an intact ``masq_checks`` as one nfnetlink batch (``nft_rules``: no
    libnftables cache of the whole ruleset, ~0.5 ms of an ADD); False when refused (a stale rule went
    meanwhile, the chain was flushed): the caller writes everything through libnftables then."""
    rules = [nft_rules.masquerade_rule(a.ip, a.network, comment) for a in addresses]
    try:
        nft_rules.add_rules("inet", TABLE, MASQ_CHAIN, rules, stale)
    except NetError:
        return False
    return True


def _nft_delete(handles: Iterable[int]) -> None:
    nft_dump.delete_rules("inet", TABLE, MASQ_CHAIN, list(handles))


#: postrouting's rules as the kernel held them after this process last wrote them (the base chain's contents)
_nft_base: list[bytes] | None = None


def _remember_nft_base() -> None:
    global _nft_base
    try:
        _nft_base = nft_dump.chain_expressions("inet", TABLE, _POSTROUTING) or None
    except NetError:
        _nft_base = None


def _nft_base_intact() -> bool:
    """Whether masq_checks exists and postrouting holds what this process wrote there: then an ADD adds its rule
    only. Rewriting them (flush and add, as the reference does) on every ADD costs ~0.6 ms of CPU, and the flushed
    rules' release makes later netlink closes wait for an RCU grace period."""
    if _nft_base is None:
        return False
    try:
        return (nft_dump.chain_exists("inet", TABLE, MASQ_CHAIN)
                and nft_dump.chain_expressions("inet", TABLE, _POSTROUTING) == _nft_base)
    except NetError:
        return False


_nft_known_usable = False


def _nft_usable() -> bool:
    """Whether libnftables works here; a success is remembered per process (it does not go away)."""
    global _nft_known_usable
    if not _nft_known_usable:
        try:
            nft.list_json("tables")
        except NetError:
            return False
        _nft_known_usable = True
    return True


def _nft_source(rule: dict[str, Any]) -> str | None:
    for stmt in rule.get("expr", []):
        match = stmt.get("match") if isinstance(stmt, dict) else None
        if match and match.get("left", {}).get("payload", {}).get("field") == "saddr":
            return str(match.get("right"))
    return None


# -- iptables -----------------------------------------------------------------


def _option(tokens: list[str], name: str) -> str | None:
    return tokens[tokens.index(name) + 1] if name in tokens[:-1] else None


def _ipt_jumps(edit: TableEdit | TableState, chain: str) -> list[list[str]]:
    """POSTROUTING's jumps to ``chain`` (rules without the leading ``-A POSTROUTING``)."""
    return [rule for rule in edit.rules("POSTROUTING") if _option(rule, "-j") == chain]


def _ipt_setup(edit: TableEdit, addresses: Sequence[IPInterface], chain: str, comment: str) -> None:
    tag = ["-m", "comment", "--comment", comment]
    edit.ensure_chain(chain)
    for addr in addresses:  # inserted: every ACCEPT stays ahead of the MASQUERADE
        edit.insert_unique(chain, ["-d", str(addr.network), "-j", "ACCEPT", *tag])
    edit.append_unique(chain, ["!", "-d", _MULTICAST[edit.family], "-j", "MASQUERADE", *tag])
    for addr in addresses:
        edit.append_unique("POSTROUTING", ["-s", str(addr.ip), "-j", chain, *tag])


def _ipt_teardown(edit: TableEdit, chain: str, addresses: Sequence[IPInterface]) -> None:
    """Remove the jumps from ``addresses`` (all jumps when empty) and then the chain if nothing uses it."""
    kept = 0
    for tokens in _ipt_jumps(edit, chain):
        source = _option(tokens, "-s")
        # A source network (the legacy "-s ip/prefix" form) matches the addresses inside it.
        if addresses and not (source and any(a.ip in ip_network(source, strict=False) for a in addresses)):
            kept += 1
            continue
        edit.delete("POSTROUTING", tokens)
    if not kept:
        edit.delete_chain(chain)


def _ipt_families() -> list[iptables.Family]:
    """The families whose iptables tool is installed."""
    both: tuple[iptables.Family, ...] = (4, 6)
    return [family for family in both if iptables.installed(family)]


def _ipt_chain_known_missing(family: iptables.Family, chain: str) -> bool:
    """True when iptables-nft's nat table provably lacks ``chain`` (one nfnetlink round trip, no tool)."""
    if iptables.variant(family) != "nf_tables":
        return False
    try:
        return not nft_dump.chain_exists("ip" if family == 4 else "ip6", "nat", chain)
    except NetError:
        return False


# -- the operations -----------------------------------------------------------


def choose_backend(requested: str | None = None) -> Backend:
    """``requested`` if set, else nftables when usable, else iptables."""
    if requested == "iptables":
        return "iptables"
    if requested == "nftables":
        return "nftables"
    if requested:
        raise NetError(f"unknown ipmasq backend '{requested}'")
    if _nft_usable():
        return "nftables"
    if iptables.available(4):
        return "iptables"
    raise NetError("failed to set up IP masquerade: neither nftables nor iptables is usable on this host")


def setup_masquerade(
    addresses: Sequence[IPInterface], network: str, ifname: str, container_id: str, backend: str | None = None
) -> Backend:
    """Masquerade traffic from ``addresses`` leaving their subnets; returns the backend used."""
    chosen = choose_backend(backend)
    if chosen == "nftables":
        prefix = _instance_tag(network, ifname, container_id)
        stale = [handle for handle, comment in _nft_tagged() if comment.startswith(prefix)]
        intact = _nft_base_intact()
        if intact and _nft_add_rules(addresses, nft_comment(network, ifname, container_id), stale):
            return chosen
        if intact:  # the batch was refused: the chain changed since it was read
            stale = [handle for handle, comment in _nft_tagged() if comment.startswith(prefix)]
        nft.apply_json(nft_setup_commands(addresses, network, ifname, container_id, stale))
        _remember_nft_base()
        return chosen
    chain, comment = iptables_chain(network, container_id), iptables_comment(network, container_id)
    families: tuple[iptables.Family, ...] = (4, 6)
    for family in families:
        mine = [a for a in addresses if a.version == family]
        if mine:
            change(family, "nat", partial(_ipt_setup, addresses=mine, chain=chain, comment=comment))
    return chosen


def teardown_masquerade(network: str, ifname: str, container_id: str, addresses: Sequence[IPInterface] = ()) -> None:
    """Remove an attachment's masquerade rules from both backends; missing rules are fine.

    nftables rules are found by their tag alone. In iptables the chain is
    per container: ``addresses`` (when known) limit which jumps go, so a
    second interface of the same container keeps its own; without them every
    jump to the container's chain is removed.
    """
    errors: list[str] = []
    prefix = _instance_tag(network, ifname, container_id)
    try:
        _nft_delete(handle for handle, comment in _nft_tagged() if comment.startswith(prefix))
    except NetError as exc:
        if _nft_usable():
            errors.append(str(exc))
    chain = iptables_chain(network, container_id)
    for family in _ipt_families():
        if _ipt_chain_known_missing(family, chain):
            continue  # no chain, so no jump to it: nothing of this container's (typical of nftables-made rules)
        mine = [a for a in addresses if a.version == family]
        try:
            change(family, "nat", partial(_ipt_teardown, chain=chain, addresses=mine))
        except NetError as exc:
            if iptables.available(family):
                errors.append(str(exc))
    if errors:
        raise NetError(f"failed to tear down IP masquerade: {'; '.join(errors)}")


def missing_masquerade(
    addresses: Sequence[IPInterface], network: str, ifname: str, container_id: str
) -> list[IPInterface]:
    """The addresses that no masquerade rule of this attachment covers, in either backend (for CHECK)."""
    prefix = _instance_tag(network, ifname, container_id)
    try:
        rules = [r for r in _nft_rules() if str(r.get("comment", "")).startswith(prefix)]
    except NetError:
        rules = []
    covered = {_nft_source(r) for r in rules}
    missing = [a for a in addresses if str(a.ip) not in covered]
    chain = iptables_chain(network, container_id)
    for family in _ipt_families():
        wanted = [a for a in missing if a.version == family]
        if not wanted or chain_known_missing(family, "nat", chain):
            continue
        try:
            sources = {_option(t, "-s") for t in _ipt_jumps(save(family, "nat"), chain)}
        except NetError:
            continue
        hosts = {ip_network(s, strict=False) for s in sources if s}
        missing = [a for a in missing if not (a in wanted and any(a.ip in h for h in hosts))]
    return missing


def gc_masquerade(network: str, valid: Iterable[tuple[str, str]]) -> None:
    """Remove this network's masquerade rules of attachments not in ``valid`` ((container id, ifname) pairs)."""
    valid = list(valid)
    errors: list[str] = []
    keep = {nft_comment(network, ifname, cid) for cid, ifname in valid}
    net_prefix = _network_tag(network) + "-"
    try:
        _nft_delete(
            handle for handle, comment in _nft_tagged() if comment.startswith(net_prefix) and comment not in keep
        )
    except NetError as exc:
        if _nft_usable():
            errors.append(str(exc))
    valid_cids = {cid for cid, _ in valid}

    def collect(edit: TableEdit) -> None:
        stale: set[str] = set()
        for tokens in edit.rules("POSTROUTING"):
            found = _IPT_COMMENT.match(_option(tokens, "--comment") or "")
            target = _option(tokens, "-j") or ""
            if (
                found
                and found["network"] == network
                and found["cid"] not in valid_cids
                and target == iptables_chain(network, found["cid"])
            ):
                stale.add(found["cid"])
        for cid in sorted(stale):
            _ipt_teardown(edit, iptables_chain(network, cid), [])

    for family in _ipt_families():
        known = iptables.nft_chains(family, "nat")
        if known is not None and not any(_IPT_CHAIN.match(name) for name in known):
            continue  # no per-container chain at all: nothing to collect
        try:
            change(family, "nat", collect)
        except NetError as exc:
            if iptables.available(family):
                errors.append(str(exc))
    if errors:
        raise NetError(f"failed to garbage-collect IP masquerade: {'; '.join(errors)}")
