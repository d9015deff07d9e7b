"""The nftables objects of pycni's policy table, as values, and how they are named.

Contract: pure. A ``Ruleset`` is every named object of the one table
(``inet pycni_policy``) by name; ``pycni.policy.nftdiff`` renders it or the
difference between two. Object names derive from a hash of what they stand
for, so they are stable across restarts and the same on every node:
``pod_<h>_in|eg`` (a local pod's union chain), ``pol_<h>_in|eg`` (a
policy's chain), ``peer_<h>_v4|v6``, ``cidr_<h>_v4|v6``, ``nport_<h>_v4|v6``
(sets), ``ingress_v4`` ... ``egress_v6`` (the verdict maps).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from pycni.policy.model import Direction

__all__ = [
    "ADDR_TYPE",
    "FAMILIES",
    "FAMILY",
    "IP_KEYWORD",
    "TABLE",
    "Chain",
    "Fam",
    "Map",
    "Ruleset",
    "Set",
    "digest",
    "ip_family",
    "pod_chain_name",
    "policy_chain_name",
]

FAMILY = "inet"
TABLE = "pycni_policy"
Fam = Literal["v4", "v6"]
FAMILIES: tuple[Fam, ...] = ("v4", "v6")
ADDR_TYPE = {"v4": "ipv4_addr", "v6": "ipv6_addr"}
IP_KEYWORD = {"v4": "ip", "v6": "ip6"}
_SUFFIX = {"Ingress": "in", "Egress": "eg"}


@dataclass(frozen=True)
class Set:
    name: str
    type: str
    elements: frozenset[str] = frozenset()
    interval: bool = False


@dataclass(frozen=True)
class Map:
    """A verdict map: element key -> verdict text (``goto pod_..._in``)."""

    name: str
    type: str
    elements: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Chain:
    name: str
    rules: tuple[str, ...] = ()
    hook: str = ""  # "type filter hook forward priority -2; policy accept;" for base chains


@dataclass(frozen=True)
class Ruleset:
    """Every object of the table by name."""

    sets: Mapping[str, Set] = field(default_factory=dict)
    maps: Mapping[str, Map] = field(default_factory=dict)
    chains: Mapping[str, Chain] = field(default_factory=dict)


def ip_family(address: str) -> Fam:
    return "v6" if ":" in address else "v4"


def digest(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:12]


def pod_chain_name(pod_key: str, direction: Direction) -> str:
    return f"pod_{digest('pod', pod_key)}_{_SUFFIX[direction]}"


def policy_chain_name(policy_key: str, direction: Direction) -> str:
    return f"pol_{digest('policy', policy_key)}_{_SUFFIX[direction]}"
