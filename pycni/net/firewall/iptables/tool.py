"""iptables / ip6tables through their command-line tools.

The iptables backends of portmap, firewall and ipMasq exist for users whose
tooling reads iptables (kube-proxy era); Debian's ``iptables`` is
iptables-nft, so these rules land in nftables' ``ip``/``ip6`` tables too.
There is no maintained Python binding for iptables-nft, so we drive the
tool, always with ``-w`` (wait for the xtables lock) and never in a shell.

Contract: ``family`` is 4 or 6. Functions raise IptablesError (a
NetError) with the tool's message. ``run`` and ``list_rules`` cost one
process start each; code that reads or changes rules uses ``state`` (one
iptables-save and at most one iptables-restore per table) instead.

``variant(family)`` says which iptables the tool is ("nf_tables" or
"legacy"), from where its binary points (``iptables -V`` only when that
says nothing), cached per process. ``nft_chains(family, table)`` answers
in-process, through libnftables, which chains an iptables-nft table holds
(None when that cannot be known without running the tool: legacy
iptables, or no libnftables); it is how a caller skips a table that
provably holds nothing of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Sequence
from typing import Literal

from pycni.net.errors import NetError

Family = Literal[4, 6]


class IptablesError(NetError):
    """iptables refused a command; the message is the tool's."""


def _binary(family: Family) -> str:
    return "iptables" if family == 4 else "ip6tables"


_cache_lock = threading.Lock()
_variants: dict[str, str] = {}  # resolved binary -> "nf_tables" | "legacy"
_usable: set[tuple[str, int]] = set()  # (resolved binary, family) that listed the nat table once


_found: dict[tuple[str, str], str] = {}  # (binary, PATH) -> resolved path, once found


def _resolved(family: Family) -> str | None:
    """The tool's binary, symlinks resolved; a find is remembered per PATH (a lookup costs ~0.2 ms per call)."""
    binary = _binary(family)
    key = (binary, os.environ.get("PATH", ""))
    real = _found.get(key)
    if real is None:
        path = shutil.which(binary)
        if path is None:
            return None  # asked again next time: the tool may be installed later
        real = _found[key] = os.path.realpath(path)
    return real


def installed(family: Family) -> bool:
    """Whether ``iptables`` (4) or ``ip6tables`` (6) is on PATH."""
    return _resolved(family) is not None


def available(family: Family = 4) -> bool:
    """True when the tool exists and can list the nat table (kernel support present).

    A success is remembered per process (the support does not go away); a
    failure is asked again next time.
    """
    real = _resolved(family)
    if real is None:
        return False
    if (real, family) in _usable:
        return True
    if _call(family, ["-t", "nat", "-S", "POSTROUTING"], check=False).returncode != 0:
        return False
    with _cache_lock:
        _usable.add((real, family))
    return True


def variant(family: Family = 4) -> str:
    """"nf_tables" or "legacy" for the installed tool, "" when it is not installed."""
    real = _resolved(family)
    if real is None:
        return ""
    found = _variants.get(real)
    if found is None:
        name = os.path.basename(real)
        if name in ("xtables-nft-multi", "iptables-nft", "ip6tables-nft"):
            found = "nf_tables"
        elif name in ("xtables-legacy-multi", "iptables-legacy", "ip6tables-legacy"):
            found = "legacy"
        else:  # a copy or wrapper: ask the tool ("iptables v1.8.9 (nf_tables)")
            try:
                proc = subprocess.run([real, "-V"], capture_output=True, text=True, timeout=30)
            except (OSError, subprocess.SubprocessError):
                return ""
            found = "nf_tables" if "nf_tables" in proc.stdout else "legacy"
        with _cache_lock:
            _variants[real] = found
    return found


def nft_chains(family: Family, table: str) -> frozenset[str] | None:
    """Names of the chains of iptables-nft's ``table``, read in-process; None when unknowable so.

    Empty when the table does not exist. Built-in chains appear only once
    the table exists, though ``iptables -S`` shows them anyway.
    """
    found = _nft_chain_names((family,), table)
    return None if found is None else found[family]


def nft_chains_by_family(table: str) -> dict[Family, frozenset[str]] | None:
    """``nft_chains`` of both families with one in-process listing; None unless both tools are iptables-nft."""
    return _nft_chain_names((4, 6), table)


def _nft_chain_names(families: tuple[Family, ...], table: str) -> dict[Family, frozenset[str]] | None:
    if any(variant(family) != "nf_tables" for family in families):
        return None
    from pycni.net.firewall import nft

    nft_families = {4: "ip", 6: "ip6"}
    what = f"chains {nft_families[families[0]]}" if len(families) == 1 else "chains"
    try:
        items = nft.list_json(what)
    except NetError:
        return None
    found: dict[Family, set[str]] = {family: set() for family in families}
    for item in items:
        chain = item.get("chain")
        if chain and chain.get("table") == table:
            family = next((f for f in families if nft_families[f] == chain.get("family")), None)
            if family is not None:
                found[family].add(chain["name"])
    return {family: frozenset(names) for family, names in found.items()}


_VERDICTS = ("accept", "drop", "return", "reject", "masquerade")


def nft_rule_count(family: Family, table: str, chain: str) -> int | None:
    """How many rules an iptables-nft chain holds (0 when it does not exist), from one nfnetlink dump.

    None when unknowable so (iptables-legacy, or the dump failing). Cheap
    whatever the chain's size: no rule is rendered.
    """
    if variant(family) != "nf_tables":
        return None
    from pycni.net.firewall import nft_dump

    try:
        return len(nft_dump.rule_comments("ip" if family == 4 else "ip6", table, chain))
    except NetError:
        return None


def nft_rule_verdicts(family: Family, table: str, chain: str) -> list[str] | None:
    """Each rule's verdict in an iptables-nft chain ("accept", "drop", "jump <chain>", ...), read in-process.

    [] when the chain does not exist; None when unknowable so (iptables-legacy,
    or libnftables failing). Matches (and iptables comments, which libnftables
    cannot show) are left out: this is for "is anything but X in there".
    """
    if variant(family) != "nf_tables":
        return None
    from pycni.net.firewall import nft

    try:
        items = nft.list_json(f"chain {'ip' if family == 4 else 'ip6'} {table} {chain}")
    except NetError:
        return None
    verdicts = []
    for item in items:
        if "rule" not in item:
            continue
        verdict = "none"
        for expr in item["rule"].get("expr", []):
            for kind in ("jump", "goto"):
                if kind in expr:
                    verdict = f"{kind} {expr[kind].get('target', '')}"
            verdict = next((kind for kind in _VERDICTS if kind in expr), verdict)
        verdicts.append(verdict)
    return verdicts


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


def list_rules(family: Family, table: str, chain: str | None = None) -> list[str]:
    """``iptables -S`` lines of a table or chain ([] when the chain is missing)."""
    proc = _call(family, ["-t", table, "-S", *([chain] if chain else [])], check=False)
    return proc.stdout.splitlines() if proc.returncode == 0 else []


__all__ = [
    "IptablesError",
    "available",
    "installed",
    "list_rules",
    "nft_chains",
    "nft_rule_count",
    "nft_rule_verdicts",
    "run",
    "variant",
]
