"""The host's shared firewall objects a test run creates, and removing those it leaves unused.

CNI plugins create shared iptables chains once and never remove them
(``SHARED_CNI_CHAINS``: the firewall plugin's CNI-FORWARD and CNI-ADMIN,
portmap's CNI-HOSTPORT-*), and iptables-nft creates whole nft tables on
first use. ``HostFirewallSnapshot.take()`` records what exists;
``remove_new_shared_chains()`` later deletes what is new and carries no
per-container rule, and returns what it had to leave in place (a live
attachment, ours or a parallel test's, still uses it).
"""

from __future__ import annotations

import functools
import json
import shlex
import shutil
from dataclasses import dataclass

from tests.support.host import run

__all__ = ["SHARED_CNI_CHAINS", "HostFirewallSnapshot"]

# Chains the plugins in podman's chain create once and never remove.
SHARED_CNI_CHAINS = ("CNI-FORWARD", "CNI-ADMIN", "CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ")


sh = functools.partial(run, timeout=60)


def _iptables_chains(tool: str) -> dict[str, dict[str, list[str]]]:
    """{table: {chain: [rule lines]}} from `<tool>-save` ({} if the tool is missing)."""
    if not shutil.which(f"{tool}-save"):
        return {}
    out = sh(f"{tool}-save", check=False).stdout
    tables: dict[str, dict[str, list[str]]] = {}
    table: dict[str, list[str]] = {}
    for line in out.splitlines():
        if line.startswith("*"):
            table = tables.setdefault(line[1:].strip(), {})
        elif line.startswith(":"):
            table.setdefault(line[1:].split()[0], [])
        elif line.startswith("-A "):
            table.setdefault(line.split()[1], []).append(line)
    return tables


def _target(rule: str) -> str:
    """The -j target of an iptables-save rule line ('' if none)."""
    return rule.split(" -j ", 1)[1].split()[0] if " -j " in rule else ""


def _per_container(rule: str, shared: set[str]) -> bool:
    """A rule about one attachment: matches an address, or jumps to a per-container chain."""
    target = _target(rule)
    return " -s " in rule or " -d " in rule or (target.startswith("CNI-") and target not in shared)


def _nft_tables() -> set[str]:
    if not shutil.which("nft"):
        return set()
    out = sh("nft", "list", "tables", check=False).stdout
    return {line.strip() for line in out.splitlines() if line.startswith("table ")}


def _uses_nft_backend(tool: str) -> bool:
    return shutil.which(tool) is not None and "nf_tables" in sh(tool, "-V", check=False).stdout


@dataclass
class HostFirewallSnapshot:
    chains: dict[str, dict[str, dict[str, list[str]]]]  # tool -> table -> chain -> rules
    nft_tables: set[str]

    @classmethod
    def take(cls) -> HostFirewallSnapshot:
        return cls({tool: _iptables_chains(tool) for tool in ("iptables", "ip6tables")}, _nft_tables())

    def remove_new_shared_chains(self) -> list[str]:
        """Delete the shared CNI chains (and the nft tables iptables-nft made for them) that
        did not exist at snapshot time and now carry no per-container rule. Returns what was
        left in place, for the report."""
        kept: list[str] = []
        for tool in ("iptables", "ip6tables"):
            now = _iptables_chains(tool)
            for table, chains in now.items():
                before = self.chains.get(tool, {}).get(table, {})
                new = {c for c in chains if c.startswith("CNI-") and c not in before}
                if not new:
                    continue
                shared = new & set(SHARED_CNI_CHAINS)
                # Per-container chains (CNI-<hash>, CNI-DN-<hash>) or per-address rules mean some
                # attachment (ours that failed to tear down, or a parallel test's) is still alive.
                live = bool(new - shared) or any(
                    _per_container(rule, shared)
                    for chain in shared
                    for rule in chains[chain]
                )
                if live:
                    kept += [f"{tool} {table} {c}" for c in sorted(new)]
                    continue
                for chain, rules in chains.items():
                    if chain in shared:
                        continue
                    for rule in rules:
                        if _target(rule) in shared:
                            sh(tool, "-t", table, "-D", *shlex.split(rule)[1:], check=False)
                for chain in shared:
                    sh(tool, "-t", table, "-F", chain, check=False)
                for chain in shared:
                    if sh(tool, "-t", table, "-X", chain, check=False).returncode != 0:
                        kept.append(f"{tool} {table} {chain}")
        # iptables-nft creates whole nft tables on first use; drop the ones that are new and empty.
        if any(_uses_nft_backend(t) for t in ("iptables", "ip6tables")):
            for table in sorted(_nft_tables() - self.nft_tables):
                family, name = table.split()[1:3]
                listing = sh("nft", "-j", "list", "table", family, name, check=False).stdout
                try:
                    objs = json.loads(listing)["nftables"]
                except (ValueError, KeyError):
                    continue
                has_rules = any("rule" in o for o in objs)
                only_base = all(o.get("chain", {}).get("hook") for o in objs if "chain" in o)
                if not has_rules and only_base and name in ("filter", "nat", "mangle", "raw"):
                    sh("nft", "delete", "table", family, name, check=False)
        return kept
