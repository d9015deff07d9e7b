"""The cluster agent's masquerade: pods leaving the cluster network leave with the node's address.

One nftables table of the agent's own, ``inet pycni_agent``, holding a nat
postrouting chain::

    ip saddr <cluster> ip daddr <cluster> return
    ip saddr <cluster> ip daddr 224.0.0.0/4 return
    ip saddr <cluster> masquerade

and in a dual-stack cluster the same three for its IPv6 network (``ip6``,
multicast ff00::/8), with their own comment; an IPv6-only cluster
(``cluster`` None) has only those three.

Contract:

- ``masquerade_commands(cluster, cluster6=None)`` is pure: the libnftables JSON of one
  transaction that (re)creates the table with exactly these rules. Applying
  it again replaces the rules atomically (add table, delete it, add it
  again, in one transaction), so there is never a moment without them.
- ``masquerade_in_place(cluster, cluster6=None)`` tells whether the kernel holds exactly
  this table (for the reconcile loop: repair only what differs).
- ``remove_masquerade()`` deletes the table; a missing table is fine.
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network
from typing import Any

from pycni.net.firewall import nft

__all__ = ["TABLE", "ensure_masquerade", "masquerade_commands", "masquerade_in_place", "remove_masquerade"]

TABLE = "pycni_agent"
CHAIN = "postrouting"
_FAMILY = "inet"
_COMMENT = "pycni agent: masquerade pods leaving {}"


def _prefix(net: IPv4Network | IPv6Network) -> dict[str, Any]:
    return {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}


def _match(field: str, op: str, right: Any, protocol: str = "ip") -> dict[str, Any]:
    return {"match": {"op": op, "left": {"payload": {"protocol": protocol, "field": field}}, "right": right}}


def _rule(expr: list[dict[str, Any]], comment: str) -> dict[str, Any]:
    return {"add": {"rule": {"family": _FAMILY, "table": TABLE, "chain": CHAIN, "expr": expr, "comment": comment}}}


def masquerade_commands(cluster: IPv4Network | None, cluster6: IPv6Network | None = None) -> list[dict[str, Any]]:
    """One transaction: the table afresh, with the three rules of the module docstring (six with IPv6)."""
    table = {"family": _FAMILY, "name": TABLE}
    chain = {"family": _FAMILY, "table": TABLE, "name": CHAIN, "type": "nat", "hook": "postrouting",
             "prio": 100, "policy": "accept"}
    return [
        {"add": {"table": table}},
        {"delete": {"table": table}},
        {"add": {"table": table}},
        {"add": {"chain": chain}},
        *(_rules(cluster, IPv4Network("224.0.0.0/4"), "ip") if cluster is not None else []),
        *(_rules(cluster6, IPv6Network("ff00::/8"), "ip6") if cluster6 is not None else []),
    ]


def _rules(cluster: IPv4Network | IPv6Network, multicast: IPv4Network | IPv6Network,
           protocol: str) -> list[dict[str, Any]]:
    comment = _COMMENT.format(cluster)
    src = _match("saddr", "==", _prefix(cluster), protocol)
    return [
        _rule([src, _match("daddr", "==", _prefix(cluster), protocol), {"return": None}], comment),
        _rule([src, _match("daddr", "==", _prefix(multicast), protocol), {"return": None}], comment),
        _rule([src, {"masquerade": None}], comment),
    ]


def ensure_masquerade(cluster: IPv4Network | None, cluster6: IPv6Network | None = None) -> None:
    nft.apply_json(masquerade_commands(cluster, cluster6))


def masquerade_in_place(cluster: IPv4Network | None, cluster6: IPv6Network | None = None) -> bool:
    """True if the table holds exactly our three rules for ``cluster`` (and three for ``cluster6``)."""
    rules = nft.rules(_FAMILY, TABLE)
    comments = [_COMMENT.format(net) for net in (cluster, cluster6) if net is not None for _ in range(3)]
    return sorted(str(r.get("comment")) for r in rules) == sorted(comments) and all(
        r.get("chain") == CHAIN for r in rules)


def remove_masquerade() -> bool:
    """Delete the agent's table; False if there was none."""
    if not nft.table_exists(_FAMILY, TABLE):
        return False
    nft.apply(f"delete table {_FAMILY} {TABLE}")
    return True
