"""The cluster agent's masquerade: pods leaving the cluster network leave with the node's address.

One nftables table of the agent's own, ``inet pycni_agent``, holding a nat
postrouting chain::

    ip saddr <cluster> ip daddr <cluster> return
    ip saddr <cluster> ip daddr 224.0.0.0/4 return
    ip saddr <cluster> masquerade

Contract:

- ``masquerade_commands(cluster)`` is pure: the libnftables JSON of one
  transaction that (re)creates the table with exactly these rules. Applying
  it again replaces the rules atomically (add table, delete it, add it
  again, in one transaction), so there is never a moment without them.
- ``masquerade_in_place(cluster)`` tells whether the kernel holds exactly
  this table (for the reconcile loop: repair only what differs).
- ``remove_masquerade()`` deletes the table; a missing table is fine.
"""

from __future__ import annotations

from ipaddress import IPv4Network
from typing import Any

from pycni.net.firewall import nft

__all__ = ["TABLE", "ensure_masquerade", "masquerade_commands", "masquerade_in_place", "remove_masquerade"]

TABLE = "pycni_agent"
CHAIN = "postrouting"
_FAMILY = "inet"
_COMMENT = "pycni agent: masquerade pods leaving {}"


def _prefix(net: IPv4Network) -> dict[str, Any]:
    return {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}


def _match(field: str, op: str, right: Any) -> dict[str, Any]:
    return {"match": {"op": op, "left": {"payload": {"protocol": "ip", "field": field}}, "right": right}}


def _rule(expr: list[dict[str, Any]], comment: str) -> dict[str, Any]:
    return {"add": {"rule": {"family": _FAMILY, "table": TABLE, "chain": CHAIN, "expr": expr, "comment": comment}}}


def masquerade_commands(cluster: IPv4Network) -> list[dict[str, Any]]:
    """One transaction: the table afresh, with the three rules of the module docstring."""
    table = {"family": _FAMILY, "name": TABLE}
    chain = {"family": _FAMILY, "table": TABLE, "name": CHAIN, "type": "nat", "hook": "postrouting",
             "prio": 100, "policy": "accept"}
    comment = _COMMENT.format(cluster)
    src = _match("saddr", "==", _prefix(cluster))
    return [
        {"add": {"table": table}},
        {"delete": {"table": table}},
        {"add": {"table": table}},
        {"add": {"chain": chain}},
        _rule([src, _match("daddr", "==", _prefix(cluster)), {"return": None}], comment),
        _rule([src, _match("daddr", "==", _prefix(IPv4Network("224.0.0.0/4"))), {"return": None}], comment),
        _rule([src, {"masquerade": None}], comment),
    ]


def ensure_masquerade(cluster: IPv4Network) -> None:
    nft.apply_json(masquerade_commands(cluster))


def masquerade_in_place(cluster: IPv4Network) -> bool:
    """True if the table holds exactly our three rules for ``cluster``."""
    rules = nft.rules(_FAMILY, TABLE)
    comment = _COMMENT.format(cluster)
    return len(rules) == 3 and all(r.get("comment") == comment and r.get("chain") == CHAIN for r in rules)


def remove_masquerade() -> bool:
    """Delete the agent's table; False if there was none."""
    if not nft.table_exists(_FAMILY, TABLE):
        return False
    nft.apply(f"delete table {_FAMILY} {TABLE}")
    return True
