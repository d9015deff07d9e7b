"""MAC spoof checking for bridge ports (the bridge plugin's ``macspoofchk``).

Frames entering the bridge from a container's host veth must carry the
container's MAC address; anything else is dropped before the bridge sees
it. The layout is the reference plugins', so pycni and the Go plugins
remove each other's rules:

- table ``bridge nat``, base chain ``PREROUTING`` (filter, hook prerouting,
  priority -300, policy accept), shared and never deleted;
- per attachment, with ``<id>`` = ``<container id>-<ifname>``: a rule
  ``iifname <host veth> jump cni-br-iface-<id>`` in PREROUTING, chain
  ``cni-br-iface-<id>`` jumping to ``cni-br-iface-<id>-mac``, which returns
  for ``ether saddr <mac>`` and drops the rest. Every rule is commented
  ``macspoofchk-<id>``.

Setup is one transaction (libnftables JSON, so any interface name is
safe); teardown removes the attachment's rules and chains and is
idempotent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pycni.net.firewall import nft

__all__ = [
    "gc_spoofcheck",
    "setup_commands",
    "setup_spoofcheck",
    "spoofcheck_present",
    "teardown_spoofcheck",
]

_FAMILY = "bridge"
_TABLE = "nat"
_BASE = "PREROUTING"
_PRIORITY = -300
_COMMENT_PREFIX = "macspoofchk-"
_CHAIN_PREFIX = "cni-br-iface-"


def _ref(container_id: str, ifname: str) -> str:
    return f"{container_id}-{ifname}"


def _chains(ref: str) -> tuple[str, str]:
    iface_chain = _CHAIN_PREFIX + ref
    return iface_chain, iface_chain + "-mac"


def _obj(**fields: Any) -> dict[str, Any]:
    return {"family": _FAMILY, "table": _TABLE, **fields}


def _rule(chain: str, comment: str, *expr: dict[str, Any]) -> dict[str, Any]:
    return {"add": {"rule": _obj(chain=chain, expr=list(expr), comment=comment)}}


def setup_commands(host_ifname: str, mac: str, container_id: str, ifname: str) -> list[dict[str, Any]]:
    """The setup transaction (pure): shared table and base chain, this attachment's chains and rules."""
    ref = _ref(container_id, ifname)
    iface_chain, mac_chain = _chains(ref)
    comment = _COMMENT_PREFIX + ref
    base = _obj(name=_BASE, type="filter", hook="prerouting", prio=_PRIORITY, policy="accept")
    iif = {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": host_ifname}}
    source = {"match": {"op": "==", "left": {"payload": {"protocol": "ether", "field": "saddr"}}, "right": mac}}
    return [
        {"add": {"table": {"family": _FAMILY, "name": _TABLE}}},
        {"add": {"chain": base}},
        {"add": {"chain": _obj(name=iface_chain)}},
        {"add": {"chain": _obj(name=mac_chain)}},
        {"flush": {"chain": _obj(name=iface_chain)}},
        {"flush": {"chain": _obj(name=mac_chain)}},
        _rule(_BASE, comment, iif, {"jump": {"target": iface_chain}}),
        _rule(iface_chain, comment, {"jump": {"target": mac_chain}}),
        _rule(mac_chain, comment, source, {"return": None}),
        _rule(mac_chain, comment, {"drop": None}),
    ]


def setup_spoofcheck(host_ifname: str, mac: str, container_id: str, ifname: str) -> None:
    """Only let frames from ``mac`` in through ``host_ifname``."""
    nft.apply_json(setup_commands(host_ifname, mac, container_id, ifname))


def _listing() -> tuple[list[dict[str, Any]], set[str]]:
    """(PREROUTING rules, chain names) of the table; empty when it does not exist."""
    rules: list[dict[str, Any]] = []
    chains: set[str] = set()
    for item in nft.list_json(f"table {_FAMILY} {_TABLE}"):
        if "chain" in item:
            chains.add(item["chain"]["name"])
        elif "rule" in item and item["rule"].get("chain") == _BASE:
            rules.append(item["rule"])
    return rules, chains


def _removal(ref: str, rules: list[dict[str, Any]], chains: set[str]) -> list[dict[str, Any]]:
    comment = _COMMENT_PREFIX + ref
    commands = [
        {"delete": {"rule": _obj(chain=_BASE, handle=r["handle"])}} for r in rules if r.get("comment") == comment
    ]
    for chain in _chains(ref):  # the iface chain first: it jumps to the mac chain
        if chain in chains:
            commands += [{"flush": {"chain": _obj(name=chain)}}, {"delete": {"chain": _obj(name=chain)}}]
    return commands


def teardown_spoofcheck(container_id: str, ifname: str) -> None:
    """Remove the attachment's spoof-check rules and chains (nothing to remove is fine)."""
    rules, chains = _listing()
    nft.apply_json(_removal(_ref(container_id, ifname), rules, chains))


def spoofcheck_present(host_ifname: str, container_id: str, ifname: str) -> bool:
    """True if the attachment's jump rule (for ``host_ifname``) and both chains exist."""
    ref = _ref(container_id, ifname)
    rules, chains = _listing()
    jump = any(
        r.get("comment") == _COMMENT_PREFIX + ref and _iifname(r) == host_ifname and _target(r) == _chains(ref)[0]
        for r in rules
    )
    return jump and all(chain in chains for chain in _chains(ref))


def _iifname(rule: dict[str, Any]) -> str | None:
    for stmt in rule.get("expr", []):
        match = stmt.get("match") if isinstance(stmt, dict) else None
        if match and match.get("left", {}).get("meta", {}).get("key") == "iifname":
            return str(match.get("right"))
    return None


def _target(rule: dict[str, Any]) -> str | None:
    for stmt in rule.get("expr", []):
        if isinstance(stmt, dict) and "jump" in stmt:
            return str(stmt["jump"].get("target"))
    return None


def gc_spoofcheck(valid: Iterable[tuple[str, str]], link_exists: Callable[[str], bool]) -> int:
    """Remove spoof-check rules of attachments not in ``valid`` whose host veth is gone; return how many.

    The rules do not name their network, so an attachment missing from
    this network's valid set may belong to another network: its rules go
    only once its host veth no longer exists (they can match nothing then).
    """
    keep = {_ref(cid, ifname) for cid, ifname in valid}
    rules, chains = _listing()
    stale = set()
    for rule in rules:
        comment = str(rule.get("comment", ""))
        ref = comment[len(_COMMENT_PREFIX) :]
        if not comment.startswith(_COMMENT_PREFIX) or ref in keep or _target(rule) != _chains(ref)[0]:
            continue
        host = _iifname(rule)
        if host is None or not link_exists(host):
            stale.add(ref)
    commands = [cmd for ref in sorted(stale) for cmd in _removal(ref, rules, chains)]
    nft.apply_json(commands)
    return len(stale)
