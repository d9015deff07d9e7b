"""The firewall plugin's host rules, rendered as data (pure: no I/O).

iptables (filter table, both families), laid out like the reference so
existing tooling and the admin chain keep working::

    FORWARD:     -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
    CNI-FORWARD: -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN   (first)
                 -d <ip>/32 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment <tag> -j ACCEPT
                 -s <ip>/32 -m comment --comment <tag> -j ACCEPT

The per-address rules carry the attachment's owner tag (the reference's
carry no comment), so DEL and GC remove exactly one attachment's rules.
ingressPolicy uses the reference's per-bridge chains, with its comments::

    FORWARD:               -j CNI-ISOLATION-STAGE-1                    (ahead of CNI-FORWARD)
    CNI-ISOLATION-STAGE-1: -i BR ! -o BR -j CNI-ISOLATION-STAGE-2      (per bridge) ... -j RETURN
                           -i BR -o BR -j DROP                         (isolated only)
    CNI-ISOLATION-STAGE-2: -o BR -j DROP                               (per bridge) ... -j RETURN

nftables: one table of our own, ``inet pycni-firewall``::

    chain forward            (filter hook forward, priority filter, policy accept)
        ip daddr <ip> ct state established,related accept comment <tag>
        ip saddr <ip> accept comment <tag>
    chain isolation-stage-1  (filter hook forward, priority filter - 1, policy accept)
        iifname BR oifname != BR jump isolation-stage-2 comment <bridge comment>
        iifname BR oifname BR drop comment <bridge comment>              (isolated only)
    chain isolation-stage-2
        oifname BR drop comment <bridge comment>

Note what an nftables accept means: every base chain on the forward hook,
in every table, sees the packet, and a drop in any of them is final. Our
accepts say what the pod needs and end *our* table's evaluation; they do
not override a drop policy or drop rule in another table (iptables-nft's
``ip filter`` FORWARD included). A host whose forwarding policy drops needs
the iptables backend (whose rules live in that same FORWARD chain) or its
own allow rules. Our isolation drops, conversely, are final everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Any, Literal

__all__ = [
    "ADMIN_COMMENT",
    "CNI_FORWARD",
    "FORWARD_COMMENT",
    "NFT_FAMILY",
    "NFT_FORWARD",
    "NFT_STAGE1",
    "NFT_STAGE2",
    "NFT_TABLE",
    "STAGE1",
    "STAGE2",
    "IptablesIsolation",
    "admin_jump",
    "forward_jump",
    "ingress_comment",
    "iptables_allow_rules",
    "iptables_isolation",
    "nft_allow_rules",
    "nft_bridge_comment",
    "nft_bridge_rules",
    "nft_skeleton",
    "stage1_jump",
]

IPAddress = IPv4Address | IPv6Address
Policy = Literal["same-bridge", "isolated"]

# -- iptables -----------------------------------------------------------------

CNI_FORWARD = "CNI-FORWARD"
STAGE1 = "CNI-ISOLATION-STAGE-1"
STAGE2 = "CNI-ISOLATION-STAGE-2"
FORWARD_COMMENT = "CNI firewall plugin rules"
ADMIN_COMMENT = "CNI firewall plugin admin overrides"


def _comment(text: str) -> list[str]:
    return ["-m", "comment", "--comment", text]


def forward_jump() -> list[str]:
    """FORWARD's jump to CNI-FORWARD."""
    return [*_comment(FORWARD_COMMENT), "-j", CNI_FORWARD]


def admin_jump(admin_chain: str) -> list[str]:
    """CNI-FORWARD's first rule: the user's admin chain runs before the plugin's rules."""
    return [*_comment(ADMIN_COMMENT), "-j", admin_chain]


def _host(ip: IPAddress) -> str:
    return f"{ip}/{ip.max_prefixlen}"


def iptables_allow_rules(ip: IPAddress, tag: str) -> list[list[str]]:
    """The two CNI-FORWARD rules of one pod address: replies in, anything out."""
    return [
        ["-d", _host(ip), "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", *_comment(tag), "-j", "ACCEPT"],
        ["-s", _host(ip), *_comment(tag), "-j", "ACCEPT"],
    ]


def ingress_comment(policy: str) -> str:
    return f"{FORWARD_COMMENT} (ingressPolicy: {policy})"


def stage1_jump(policy: str) -> list[str]:
    return [*_comment(ingress_comment(policy)), "-j", STAGE1]


@dataclass(frozen=True)
class IptablesIsolation:
    """One bridge's ingressPolicy rules: ``prepend`` to a chain if absent; ``tail`` appended if absent."""

    stage1: tuple[tuple[str, ...], ...]
    stage2: tuple[tuple[str, ...], ...]
    tail: tuple[str, ...]


def iptables_isolation(bridge: str, policy: str) -> IptablesIsolation:
    comment = _comment(ingress_comment(policy))
    stage1 = [("-i", bridge, "!", "-o", bridge, *comment, "-j", STAGE2)]
    if policy == "isolated":
        stage1.append(("-i", bridge, "-o", bridge, *comment, "-j", "DROP"))
    stage2 = [("-o", bridge, *comment, "-j", "DROP")]
    return IptablesIsolation(stage1=tuple(stage1), stage2=tuple(stage2), tail=(*comment, "-j", "RETURN"))


# -- nftables -----------------------------------------------------------------

NFT_FAMILY = "inet"
NFT_TABLE = "pycni-firewall"
NFT_FORWARD = "forward"
NFT_STAGE1 = "isolation-stage-1"
NFT_STAGE2 = "isolation-stage-2"
_FILTER_PRIORITY = 0


def _obj(**fields: Any) -> dict[str, Any]:
    return {"family": NFT_FAMILY, "table": NFT_TABLE, **fields}


def nft_skeleton(*, isolation: bool) -> list[dict[str, Any]]:
    """Create-if-missing commands for the table and chains (``add`` of an existing object is a no-op)."""
    commands: list[dict[str, Any]] = [
        {"add": {"table": {"family": NFT_FAMILY, "name": NFT_TABLE}}},
        {
            "add": {
                "chain": _obj(name=NFT_FORWARD, type="filter", hook="forward", prio=_FILTER_PRIORITY, policy="accept")
            }
        },
    ]
    if isolation:
        commands += [
            {
                "add": {
                    "chain": _obj(
                        name=NFT_STAGE1, type="filter", hook="forward", prio=_FILTER_PRIORITY - 1, policy="accept"
                    )
                }
            },
            {"add": {"chain": _obj(name=NFT_STAGE2)}},
        ]
    return commands


def _match(left: dict[str, Any], op: str, right: Any) -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def _payload(ip: IPAddress, field: str) -> dict[str, Any]:
    return {"payload": {"protocol": "ip" if ip.version == 4 else "ip6", "field": field}}


def _meta(key: str) -> dict[str, Any]:
    return {"meta": {"key": key}}


def nft_allow_rules(ip: IPAddress, tag: str) -> list[dict[str, Any]]:
    """The two forward-chain rules of one pod address (add commands)."""
    replies = [
        _match(_payload(ip, "daddr"), "==", str(ip)),
        _match({"ct": {"key": "state"}}, "in", ["established", "related"]),
        {"accept": None},
    ]
    outgoing = [_match(_payload(ip, "saddr"), "==", str(ip)), {"accept": None}]
    return [{"add": {"rule": _obj(chain=NFT_FORWARD, expr=expr, comment=tag)}} for expr in (replies, outgoing)]


def nft_bridge_comment(bridge: str, policy: str) -> str:
    """Marks one bridge's isolation rules (not an owner tag: they belong to the bridge, not to a pod)."""
    return f"pycni firewall ingressPolicy {policy} bridge {bridge}"


def nft_bridge_rules(bridge: str, policy: str) -> list[dict[str, Any]]:
    """One bridge's isolation rules (add commands)."""
    comment = nft_bridge_comment(bridge, policy)
    stage1 = [
        [
            _match(_meta("iifname"), "==", bridge),
            _match(_meta("oifname"), "!=", bridge),
            {"jump": {"target": NFT_STAGE2}},
        ]
    ]
    if policy == "isolated":
        stage1.append([_match(_meta("iifname"), "==", bridge), _match(_meta("oifname"), "==", bridge), {"drop": None}])
    commands = [{"add": {"rule": _obj(chain=NFT_STAGE1, expr=expr, comment=comment)}} for expr in stage1]
    stage2 = [_match(_meta("oifname"), "==", bridge), {"drop": None}]
    commands.append({"add": {"rule": _obj(chain=NFT_STAGE2, expr=stage2, comment=comment)}})
    return commands


def nft_rule_address(rule: dict[str, Any]) -> tuple[str, str] | None:
    """("saddr"|"daddr", address) of an allow rule as nft lists it, else None."""
    for stmt in rule.get("expr", []):
        match = stmt.get("match") if isinstance(stmt, dict) else None
        if not match:
            continue
        payload = match.get("left", {}).get("payload", {}) if isinstance(match.get("left"), dict) else {}
        if payload.get("field") in ("saddr", "daddr") and isinstance(match.get("right"), str):
            return payload["field"], match["right"]
    return None
