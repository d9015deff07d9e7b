"""Atomic iptables changes: ``iptables-restore --noflush`` (and ip6tables-restore).

``tool`` runs one tool process per rule; a plugin that changes
a dozen rules pays a dozen process starts and exposes half-built chains
in between. A restore document applies a whole table's changes in one
process and one kernel transaction (iptables-nft commits it as one nft
batch), so readers never see a chain without its rules.

Contract: ``restore(family, table, lines)`` applies ``lines`` (``-N``,
``-A``, ``-I``, ``-D``, ``-F``, ``-X`` and ``:CHAIN - [0:0]`` lines, which
with --noflush create the chain or flush it if it exists) to ``table``
atomically; failure raises IptablesError with the tool's message and
changes nothing. ``quote(token)`` makes one argument safe for a restore
line. Always ``-w``: wait for the xtables lock.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from typing import Literal

from pycni.net.firewall.iptables.tool import IptablesError

__all__ = ["quote", "restore"]


def quote(token: str) -> str:
    """One argument of a restore line, double-quoted when it holds blanks or quotes."""
    if token and not any(c.isspace() or c in "\"'\\" for c in token):
        return token
    return '"' + token.replace("\\", "\\\\").replace('"', '\\"') + '"'


def restore(family: Literal[4, 6], table: str, lines: Sequence[str]) -> None:
    if not lines:
        return
    tool = "iptables-restore" if family == 4 else "ip6tables-restore"
    document = f"*{table}\n" + "\n".join(lines) + "\nCOMMIT\n"
    try:
        proc = subprocess.run(
            [tool, "-w", "5", "--noflush"], input=document, capture_output=True, text=True, timeout=30
        )
    except FileNotFoundError as exc:
        raise IptablesError(f"{tool} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise IptablesError(f"{tool} timed out", document[:2000]) from exc
    if proc.returncode != 0:
        raise IptablesError(f"{tool}: {proc.stderr.strip() or 'failed'}", document[:2000])
