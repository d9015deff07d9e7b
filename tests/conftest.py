"""Whole-run hygiene: shared host firewall objects the run created are removed at its end.

The plugins keep their shared top-level objects by design, as the Go
reference does (CNI-FORWARD, CNI-ADMIN, CNI-ISOLATION-STAGE-*,
CNI-HOSTPORT-*, the masquerade and portmap tables): other attachments
may still need them. A test run is different: what did not exist before
it must not exist after it. Each test removes its own per-attachment
rules; here, once every xdist worker is done (the controller's
sessionfinish), the shared objects that the run created are removed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

NFT_TABLES = (
    "inet cni_plugins_masquerade",
    "inet pycni-portmap",
    "inet pycni-firewall",
    "inet pycni_agent",
    "bridge nat",
    "ip filter",
    "ip nat",
    "ip6 filter",
    "ip6 nat",
)
CHAIN_RE = re.compile(r"^(CNI-|PYCNI-)")
_before: dict[str, set[str]] = {}


def _run(*cmd: str) -> str:
    if shutil.which(cmd[0]) is None:
        return ""
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30)
    return done.stdout if done.returncode == 0 else ""


def _nft_tables() -> set[str]:
    return {line.removeprefix("table ").strip() for line in _run("nft", "list", "tables").splitlines()}


def _cni_chains(tool: str) -> set[str]:
    """'table/chain' of every CNI-* chain iptables (or ip6tables) shows."""
    found, table = set(), ""
    for line in _run(f"{tool}-save").splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":") and CHAIN_RE.match(line[1:]):
            found.add(f"{table}/{line[1:].split()[0]}")
    return found


def _snapshot() -> dict[str, set[str]]:
    return {"nft": _nft_tables(), "iptables": _cni_chains("iptables"), "ip6tables": _cni_chains("ip6tables")}


def _is_controller(session: pytest.Session) -> bool:
    return not hasattr(session.config, "workerinput")


def pytest_sessionstart(session: pytest.Session) -> None:
    if _is_controller(session) and os.geteuid() == 0:
        _before.update(_snapshot())


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not _is_controller(session) or os.geteuid() != 0 or not _before:
        return
    for tool in ("iptables", "ip6tables"):
        _remove_chains(tool, _cni_chains(tool) - _before[tool])
    created = _nft_tables() - _before["nft"]
    if "inet pycni-portmap" in created:
        _gc_portmap_networks()
    for table in NFT_TABLES:
        if table in created and not _has_rules(table):
            _run("nft", "delete", "table", *table.split())


def _remove_chains(tool: str, chains: set[str]) -> None:
    """Unhook, flush and delete chains (table/chain) the run created."""
    names = {c.split("/", 1)[1] for c in chains}
    table = ""
    for line in _run(f"{tool}-save").splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith("-A ") and (m := re.search(r" -j (\S+)", line)) and m.group(1) in names:
            args = line[3:].split(" ", 1)
            subprocess.run([tool, "-w", "5", "-t", table, "-D", args[0], *_split(args[1])], capture_output=True,
                           check=False)
    for chain in chains:
        table, name = chain.split("/", 1)
        _run(tool, "-w", "5", "-t", table, "-F", name)
    for chain in chains:
        table, name = chain.split("/", 1)
        _run(tool, "-w", "5", "-t", table, "-X", name)


def _split(rule: str) -> list[str]:
    import shlex

    return shlex.split(rule)


def _gc_portmap_networks() -> None:
    """portmap keeps the maps and lookup rules of the network its last DEL emptied (as the reference keeps its
    chains) until a CNI GC: in a table this run created every network is the run's, so each is collected."""
    from pycni.plugins.portmap.nft_io import NftBackend

    listing = _run("nft", "list", "table", "inet", "pycni-portmap")
    for network in sorted(set(re.findall(r'net=([^\s"]+)', listing))):
        try:
            NftBackend().gc(network, set())
        except Exception as exc:  # the table is then left, and says why
            print(f"portmap GC of {network} at the end of the run failed: {exc}")


def _has_rules(table: str) -> bool:
    """True when any chain of the nft table holds a rule that is not a fixed part of an empty base layout."""
    listing = _run("nft", "list", "table", *table.split())
    body = [line.strip() for line in listing.splitlines()]
    rules = [
        line for line in body
        if line and not line.startswith(("table ", "chain ", "type ", "}", "policy "))
        and line not in ("ip daddr 224.0.0.0/4 return", "ip6 daddr ff00::/8 return", "goto masq_checks")
        and 'comment "pycni/portmap base: ' not in line  # portmap's jumps into its own (then empty) chains
    ]
    return bool(rules)
