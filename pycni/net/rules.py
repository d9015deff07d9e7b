"""Policy routing rules (``ip rule``), in the calling thread's network namespace.

Contract:

- A rule is a frozen ``RuleInfo``; selectors are ``ipaddress`` networks.
- ``add_rule(src=..., table=...)`` without a priority gets the one the
  kernel would pick for ``ip rule add`` without ``pref`` (the priority of
  the second rule of the family, minus one): pyroute2 would otherwise
  force its own default of 32000.
- ``del_rule`` deletes exactly the rule given (as listed), so a rule of the
  same selector in another table or at another priority stays.
- ``free_table(start)`` is the first table id from ``start`` that no rule
  and no route of either family refers to.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Any, Literal

from pycni.net.errors import NetError
from pycni.net.netlink.errors import failing
from pycni.net.netlink.iproute import IPRoute, rtnl
from pycni.net.netlink.messages import Message, attr

__all__ = ["FR_ACT_TO_TBL", "RuleInfo", "add_rule", "del_rule", "free_table", "list_rules", "used_tables"]

IPNetwork = IPv4Network | IPv6Network

FR_ACT_TO_TBL = 1
_FAMILIES: dict[int, int] = {4: socket.AF_INET, 6: socket.AF_INET6}
_RESERVED_TABLES = frozenset({0, 253, 254, 255})  # unspec, default, main, local


@dataclass(frozen=True)
class RuleInfo:
    family: Literal[4, 6]
    priority: int
    table: int
    src: IPNetwork | None  # None: from all
    dst: IPNetwork | None  # None: to all
    action: int  # 1 = lookup a table (FR_ACT_TO_TBL)

    def describe(self) -> str:
        return f"rule 'from {self.src or 'all'} lookup {self.table}'"


def _network(address: Any, length: int) -> IPNetwork | None:
    return None if address is None else ip_network(f"{address}/{length}", strict=False)


def _to_info(msg: Message) -> RuleInfo:
    family: Literal[4, 6] = 4 if msg["family"] == socket.AF_INET else 6
    return RuleInfo(
        family=family,
        priority=int(attr(msg, "FRA_PRIORITY", 0)),
        table=int(attr(msg, "FRA_TABLE", msg["table"])),
        src=_network(attr(msg, "FRA_SRC"), int(msg["src_len"])),
        dst=_network(attr(msg, "FRA_DST"), int(msg["dst_len"])),
        action=int(msg["action"]),
    )


def _dump(ipr: IPRoute, family: Literal[4, 6]) -> list[RuleInfo]:
    with failing(f"list IPv{family} rules"):
        return [_to_info(m) for m in ipr.get_rules(family=_FAMILIES[family])]


def list_rules(family: Literal[4, 6] | None = None) -> list[RuleInfo]:
    """Every rule of ``family`` (both when None), in the kernel's order."""
    families: tuple[Literal[4, 6], ...] = (4, 6) if family is None else (family,)
    with rtnl() as ipr:
        return [rule for fam in families for rule in _dump(ipr, fam)]


def _kernel_default_priority(rules: list[RuleInfo]) -> int:
    # net/core/fib_rules.c fib_default_rule_pref(): the second rule's
    # priority minus one, or 0 when there is no such (nonzero) rule.
    if len(rules) >= 2 and rules[1].priority:
        return rules[1].priority - 1
    return 0


def add_rule(*, src: IPNetwork, table: int, priority: int | None = None, exist_ok: bool = False) -> RuleInfo:
    """Add ``from src lookup table``; returns the rule as added."""
    family: Literal[4, 6] = 4 if src.version == 4 else 6
    with rtnl() as ipr:
        if priority is None:
            priority = _kernel_default_priority(_dump(ipr, family))
        rule = RuleInfo(family, priority, table, src, None, FR_ACT_TO_TBL)
        try:
            with failing(f"add {rule.describe()}", by_errno={errno.EEXIST: NetError}):
                ipr.rule(
                    "add",
                    family=_FAMILIES[family],
                    table=table,
                    priority=priority,
                    src=str(src.network_address),
                    src_len=src.prefixlen,
                    action="to_tbl",
                )
        except NetError as exc:
            if not (exist_ok and exc.errno == errno.EEXIST):
                raise
    return rule


def del_rule(rule: RuleInfo, *, missing_ok: bool = False) -> bool:
    """Delete exactly ``rule``; True if it was deleted."""
    spec: dict[str, Any] = {"family": _FAMILIES[rule.family], "table": rule.table, "priority": rule.priority}
    if rule.src is not None:
        spec.update(src=str(rule.src.network_address), src_len=rule.src.prefixlen)
    if rule.dst is not None:
        spec.update(dst=str(rule.dst.network_address), dst_len=rule.dst.prefixlen)
    with rtnl() as ipr:
        try:
            with failing(f"delete {rule.describe()}"):
                ipr.rule("del", **spec)
        except NetError as exc:
            if missing_ok and exc.errno == errno.ENOENT:
                return False
            raise
    return True


def used_tables() -> set[int]:
    """Table ids some rule or route (either family) refers to."""
    with rtnl() as ipr:
        tables = {rule.table for fam in (4, 6) for rule in _dump(ipr, fam)}
        with failing("list routes"):
            for msg in ipr.route("dump"):
                tables.add(int(attr(msg, "RTA_TABLE", msg["table"])))
    return tables


def free_table(start: int = 100, *, taken: set[int] | None = None) -> int:
    """The first table id >= ``start`` unused by rules and routes (and not in ``taken``)."""
    used = used_tables() | (taken or set()) | _RESERVED_TABLES
    table = start
    while table in used:
        table += 1
    if table > 0xFFFFFFFF:
        raise NetError("failed to find a free routing table: all table ids are in use")
    return table
