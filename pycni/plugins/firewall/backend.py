"""The contract between the firewall plugin and its backends (iptables_backend, nft_backend).

A backend is five operations over an ``Attachment`` (the pod addresses
and, with an ingressPolicy, the bridge): ``add`` (idempotent), ``check``
(raise when a rule is missing), ``delete`` (exactly this attachment's
rules, by owner tag; missing rules are fine), ``gc`` (a network's rules
of attachments not in the valid set) and ``prune_bridges`` (isolation
rules of the bridges ``keep`` says no: those that no longer exist). The
plugin chooses the backend and calls it under the host lock; backends
import this module, never the reverse.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Protocol

from pycni.plugins.common import owner_tag, parse_owner_tag

__all__ = ["Attachment", "Backend", "SharedChainsMissing", "network_of_tag", "same_network", "stale_tags"]

IPAddress = IPv4Address | IPv6Address
PLUGIN_TYPE = "firewall"


@dataclass(frozen=True)
class Attachment:
    network: str
    container_id: str
    ifname: str
    addresses: tuple[IPAddress, ...] = ()
    policy: str = "open"  # "open" | "same-bridge" | "isolated"
    bridge: str = ""  # set when policy is not "open"

    @property
    def tag(self) -> str:
        return owner_tag(PLUGIN_TYPE, self.network, self.container_id, self.ifname)

    def families(self) -> list[int]:
        return sorted({ip.version for ip in self.addresses})


def network_of_tag(tag: str) -> tuple[str, str, str] | None:
    """(network as tagged, container id, ifname) of a firewall owner tag, else None."""
    parsed = parse_owner_tag(tag)
    if parsed is None or parsed[0] != PLUGIN_TYPE:
        return None
    return parsed[1], parsed[2], parsed[3]


def same_network(network: str) -> str:
    """How ``network`` appears inside a tag (long names are hashed by owner_tag)."""
    parsed = parse_owner_tag(owner_tag(PLUGIN_TYPE, network, "c", "i"))
    assert parsed is not None
    return parsed[1]


def stale_tags(tags: Collection[str], network: str, valid: Collection[tuple[str, str]]) -> set[str]:
    """The tags among ``tags`` that belong to ``network`` and to no valid attachment."""
    wanted = same_network(network)
    keep = set(valid)
    stale = set()
    for tag in tags:
        owner = network_of_tag(tag)
        if owner is not None and owner[0] == wanted and (owner[1], owner[2]) not in keep:
            stale.add(tag)
    return stale


class SharedChainsMissing(Exception):
    """An add under the shared lock found shared chains or jumps to make: run it under the exclusive lock."""


class Backend(Protocol):
    def add(self, att: Attachment) -> None: ...

    def check(self, att: Attachment) -> None: ...

    def delete(self, att: Attachment) -> None: ...

    def gc(self, network: str, valid: Collection[tuple[str, str]]) -> None: ...

    def prune_bridges(self, keep: Callable[[str], bool]) -> None: ...

