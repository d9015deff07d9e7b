"""The nftables backend: a table of pycni's own, ``inet pycni-firewall`` (layout in rules.py).

Every operation reads the table once (one ``list table``) and makes its
change as one libnftables JSON transaction. The table is created on the
first ADD and deleted once it holds no rule (after a DEL, GC or prune);
the plugin's host lock keeps that from racing an ADD. See rules.py for
what an accept in our own table can and cannot do.

The kernel is reached through an ``NftRunner`` (pycni.net.nft by
default), so unit tests replay a listing and read the commands it would
apply.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, Protocol

from pycni.plugins.firewall import rules as r
from pycni.plugins.firewall.backend import Attachment, stale_tags
from pycni.spec.errors import CniError

__all__ = ["NftBackend", "NftRunner"]

_BRIDGE_COMMENT_PREFIX = "pycni firewall ingressPolicy "
_TABLE = f"table {r.NFT_FAMILY} {r.NFT_TABLE}"


class NftRunner(Protocol):
    """What the backend needs from pycni.net.nft (a fake in tests)."""

    def list_json(self, what: str) -> list[dict[str, Any]]: ...

    def apply_json(self, commands: list[dict[str, Any]]) -> None: ...


def _delete_commands(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "delete": {
                "rule": {"family": r.NFT_FAMILY, "table": r.NFT_TABLE, "chain": rule["chain"], "handle": rule["handle"]}
            }
        }
        for rule in rules
    ]


def _delete_table() -> list[dict[str, Any]]:
    return [{"delete": {"table": {"family": r.NFT_FAMILY, "name": r.NFT_TABLE}}}]


def _bridge_of(rule: dict[str, Any]) -> str | None:
    comment = str(rule.get("comment", ""))
    if not comment.startswith(_BRIDGE_COMMENT_PREFIX):
        return None
    return comment.rsplit(" bridge ", 1)[-1]


class NftBackend:
    def __init__(self, runner: NftRunner | None = None) -> None:
        if runner is None:
            from pycni.net.firewall import nft

            runner = nft
        self._nft = runner

    def _read(self) -> tuple[bool, list[dict[str, Any]]]:
        """(whether the table exists, its rules as nft lists them)."""
        items = self._nft.list_json(_TABLE)
        return bool(items), [item["rule"] for item in items if "rule" in item]

    def add(self, att: Attachment) -> None:
        _exists, existing = self._read()
        commands = r.nft_skeleton(isolation=att.policy != "open")
        # A repeated ADD replaces the attachment's rules rather than doubling them.
        commands += _delete_commands([rule for rule in existing if rule.get("comment") == att.tag])
        for ip in att.addresses:
            commands += r.nft_allow_rules(ip, att.tag)
        if att.policy != "open":
            comment = r.nft_bridge_comment(att.bridge, att.policy)
            if not any(rule.get("comment") == comment for rule in existing):
                commands += r.nft_bridge_rules(att.bridge, att.policy)
        self._nft.apply_json(commands)

    def check(self, att: Attachment) -> None:
        exists, existing = self._read()
        if not exists:
            raise CniError(f"firewall: nftables table {r.NFT_FAMILY} {r.NFT_TABLE} is missing")
        found = {r.nft_rule_address(rule) for rule in existing if rule.get("comment") == att.tag}
        for ip in att.addresses:
            for field in ("daddr", "saddr"):
                if (field, str(ip)) not in found:
                    raise CniError(
                        f"firewall: nftables rule for {'ip' if ip.version == 4 else 'ip6'} {field} {ip}"
                        f" tagged {att.tag!r} is missing from {r.NFT_TABLE}/{r.NFT_FORWARD}"
                    )
        if att.policy != "open":
            comment = r.nft_bridge_comment(att.bridge, att.policy)
            chains = {rule["chain"] for rule in existing if rule.get("comment") == comment}
            for chain in (r.NFT_STAGE1, r.NFT_STAGE2):
                if chain not in chains:
                    raise CniError(f"firewall: nftables isolation rule for bridge '{att.bridge}' missing from {chain}")

    def _remove(self, doomed: Callable[[dict[str, Any]], bool]) -> None:
        """Delete the rules ``doomed`` picks; drop the table when nothing else is left in it."""
        exists, existing = self._read()
        gone = [rule for rule in existing if doomed(rule)]
        if gone and len(gone) == len(existing):
            self._nft.apply_json(_delete_table())
        elif gone:
            self._nft.apply_json(_delete_commands(gone))
        elif not existing and exists:
            self._nft.apply_json(_delete_table())

    def delete(self, att: Attachment) -> None:
        self._remove(lambda rule: rule.get("comment") == att.tag)

    def gc(self, network: str, valid: Collection[tuple[str, str]]) -> None:
        _exists, existing = self._read()
        stale = stale_tags({str(rule.get("comment", "")) for rule in existing}, network, valid)
        self._remove(lambda rule: rule.get("comment") in stale)

    def prune_bridges(self, keep: Callable[[str], bool]) -> None:
        def doomed(rule: dict[str, Any]) -> bool:
            bridge = _bridge_of(rule)
            return bridge is not None and not keep(bridge)

        self._remove(doomed)
