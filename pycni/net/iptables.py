"""iptables / ip6tables through their command-line tools.

The iptables backends of portmap, firewall and ipMasq exist for users whose
tooling reads iptables (kube-proxy era); Debian's ``iptables`` is
iptables-nft, so these rules land in nftables' ``ip``/``ip6`` tables too.
There is no maintained Python binding for iptables-nft, so we drive the
tool, always with ``-w`` (wait for the xtables lock) and never in a shell.

Contract: ``family`` is 4 or 6. Functions raise NetError with the tool's
message; the ``*_if_exists`` / ``ensure_*`` forms make setup and teardown
idempotent.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from typing import Literal

from pycni.net.errors import NetError

Family = Literal[4, 6]


class IptablesError(NetError):
    """iptables refused a command; the message is the tool's."""


def _binary(family: Family) -> str:
    return "iptables" if family == 4 else "ip6tables"


def available(family: Family = 4) -> bool:
    """True when the tool exists and can list the nat table (kernel support present)."""
    if shutil.which(_binary(family)) is None:
        return False
    return _call(family, ["-t", "nat", "-S", "POSTROUTING"], check=False).returncode == 0


def _call(family: Family, args: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [_binary(family), "-w", "5", *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except FileNotFoundError as exc:
        raise IptablesError(f"{cmd[0]} is not installed") from exc
    if check and proc.returncode != 0:
        raise IptablesError(f"{' '.join(cmd)}: {proc.stderr.strip() or 'failed'}")
    return proc


def run(family: Family, *args: str) -> str:
    """Run one iptables command; return its stdout."""
    return _call(family, args).stdout


def chain_exists(family: Family, table: str, chain: str) -> bool:
    return _call(family, ["-t", table, "-S", chain], check=False).returncode == 0


def ensure_chain(family: Family, table: str, chain: str) -> None:
    if not chain_exists(family, table, chain):
        proc = _call(family, ["-t", table, "-N", chain], check=False)
        if proc.returncode != 0 and not chain_exists(family, table, chain):  # lost a race: fine if it exists now
            raise IptablesError(f"failed to create chain {table}/{chain}: {proc.stderr.strip()}")


def rule_exists(family: Family, table: str, chain: str, rule: Sequence[str]) -> bool:
    return _call(family, ["-t", table, "-C", chain, *rule], check=False).returncode == 0


def append_unique(family: Family, table: str, chain: str, rule: Sequence[str]) -> None:
    if not rule_exists(family, table, chain, rule):
        run(family, "-t", table, "-A", chain, *rule)


def insert_unique(family: Family, table: str, chain: str, rule: Sequence[str], position: int = 1) -> None:
    if not rule_exists(family, table, chain, rule):
        run(family, "-t", table, "-I", chain, str(position), *rule)


def delete_rule_if_exists(family: Family, table: str, chain: str, rule: Sequence[str]) -> bool:
    """Delete every copy of ``rule``; False when there was none (or no chain)."""
    deleted = False
    while rule_exists(family, table, chain, rule):
        run(family, "-t", table, "-D", chain, *rule)
        deleted = True
    return deleted


def delete_chain_if_exists(family: Family, table: str, chain: str) -> bool:
    """Flush and delete ``chain`` (jumps to it must be removed first)."""
    if not chain_exists(family, table, chain):
        return False
    run(family, "-t", table, "-F", chain)
    run(family, "-t", table, "-X", chain)
    return True


def list_rules(family: Family, table: str, chain: str | None = None) -> list[str]:
    """``iptables -S`` lines of a table or chain ([] when the chain is missing)."""
    proc = _call(family, ["-t", table, "-S", *([chain] if chain else [])], check=False)
    return proc.stdout.splitlines() if proc.returncode == 0 else []


def chains(family: Family, table: str) -> list[str]:
    """Names of the user chains and built-in chains of ``table``."""
    out = []
    for line in list_rules(family, table):
        if line.startswith(("-N ", "-P ")):
            out.append(line.split()[1])
    return out


__all__ = [
    "IptablesError",
    "append_unique",
    "available",
    "chain_exists",
    "chains",
    "delete_chain_if_exists",
    "delete_rule_if_exists",
    "ensure_chain",
    "insert_unique",
    "list_rules",
    "rule_exists",
    "run",
]
