"""One read and at most one write per iptables table: iptables-save, an in-memory edit, iptables-restore.

``tool`` runs one tool process per check and per rule. Here a
whole operation on one table of one family costs one ``iptables-save -t
<table>`` (parsed into a TableState) and, when something must change, one
``iptables-restore --noflush`` of the lines a TableEdit collected. The
edit applies each change to its in-memory copy as it queues it, so the
``*_unique`` checks of later steps see earlier steps, exactly as the same
commands run one by one would: the rules produced are the same.

Rules are compared the way ``iptables -C`` does, not as text: iptables
prints a rule in its own form (``-d 10.0.0.5`` becomes ``-d
10.0.0.5/32``, matches before the target, conntrack states in a fixed
order); ``canonical`` brings a rule written by pycni (or the Go plugins) to
that form. It covers what those plugins write: addresses, interfaces,
protocol, ``-m <match>`` with options, a target with options.

Races: another process (a Go plugin, a parallel pycni) may change the
table between the read and the write. A restore is atomic, and fails as a
whole when a ``-D`` names a rule that is gone or a ``-N`` a chain that now
exists; ``change`` then reads again and rebuilds, a few times. A chain is
created with ``-N``, never with ``:CHAIN - [0:0]``, which under --noflush
would flush a chain that appeared meanwhile.

Contract: ``save`` raises IptablesError when the tool fails;
``change(family, table, build)`` returns what ``build`` returns, and
raises IptablesError when the restore still fails after the retries.
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Callable, Sequence
from typing import TypeVar

from pycni.net.firewall.iptables import save_restore
from pycni.net.firewall.iptables.tool import Family, IptablesError, nft_chains

__all__ = [
    "TableEdit",
    "TableState",
    "canonical",
    "chain_known_missing",
    "change",
    "parse_save",
    "save",
    "split_line",
]

T = TypeVar("T")
ATTEMPTS = 4

_ALIASES = {
    "--source": "-s",
    "--src": "-s",
    "--destination": "-d",
    "--dst": "-d",
    "--in-interface": "-i",
    "--out-interface": "-o",
    "--protocol": "-p",
    "--match": "-m",
    "--jump": "-j",
    "--goto": "-g",
}
_HEADER = ("-s", "-d", "-i", "-o", "-p")  # printed first, in this order
_ONE_VALUE = frozenset({"--comment", "--ctstate", "--state", "--to-destination", "--to-source", "--to-ports"})
_CT_STATES = ("INVALID", "NEW", "RELATED", "ESTABLISHED", "UNTRACKED", "SNAT", "DNAT")


# -- rules as text ----------------------------------------------------------------


def split_line(line: str) -> list[str]:
    """The arguments of one iptables-save / iptables-restore line (iptables' own quoting rules).

    Blanks separate arguments outside double quotes; inside them a
    backslash takes the next character literally (iptables-save writes
    ``\\"``, ``\\\\`` and ``\\'``).
    """
    if '"' not in line:
        return line.split()
    tokens: list[str] = []
    buf: list[str] = []
    started = quoted = escaped = False
    for ch in line:
        if quoted:
            if escaped:
                buf.append(ch)
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
            else:
                buf.append(ch)
        elif ch == '"':
            quoted = started = True
        elif ch in " \t\n":
            if started:
                tokens.append("".join(buf))
                buf, started = [], False
        else:
            buf.append(ch)
            started = True
    if started:
        tokens.append("".join(buf))
    return tokens


def _address(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        return value


def _states(value: str) -> str:
    states = value.upper().split(",")
    known = [s for s in _CT_STATES if s in states]
    return ",".join(known + sorted(s for s in states if s not in _CT_STATES))


def canonical(rule: Sequence[str]) -> tuple[str, ...]:
    """``rule`` (the arguments after ``-A <chain>``) as iptables prints it back."""
    header: dict[str, list[str]] = {}
    matches: list[list[str]] = []
    target: list[str] = []
    block: list[str] | None = None  # the match or target that options belong to
    negate: list[str] = []
    tokens = list(rule)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "!":
            negate = ["!"]
            i += 1
            continue
        option = _ALIASES.get(token, token)
        value = tokens[i + 1] if i + 1 < len(tokens) else ""
        if option in _HEADER:
            if option in ("-s", "-d"):
                value = _address(value)
            elif option == "-p":
                value = value.lower()
            header[option] = [*negate, option, value]
            block = None
            i += 2
        elif option == "-m":
            block = [*negate, "-m", value]
            matches.append(block)
            i += 2
        elif option in ("-j", "-g"):
            target = block = [option, value]
            i += 2
        elif option.startswith("--"):
            if block is None:  # "-p tcp --dport 80": the protocol's implicit match
                block = ["-m", header["-p"][-1]] if "-p" in header else []
                matches.append(block)
            j = i + 1
            if option in _ONE_VALUE:
                j = min(i + 2, len(tokens))
            else:
                while j < len(tokens) and tokens[j] != "!" and not tokens[j].startswith("-"):
                    j += 1
            values = tokens[i + 1 : j]
            if option in ("--ctstate", "--state") and values:
                values = [_states(values[0])]
            block.extend([*negate, option, *values])
            i = j
        else:  # something this form does not know: kept in place
            if block is None:
                block = []
                matches.append(block)
            block.extend([*negate, token])
            i += 1
        negate = []
    out: list[str] = []
    for option in _HEADER:
        out += header.get(option, [])
    for match in matches:
        out += match
    return (*out, *target)


def _restore_line(*tokens: str) -> str:
    return " ".join(save_restore.quote(t) for t in tokens)


# -- a table as read ----------------------------------------------------------------


class TableState:
    """One table of one family as iptables-save printed it: chains in order, rules in order.

    Rules are the arguments after ``-A <chain>`` (the same as ``iptables
    -S``'s). A chain's lines are split only when asked for: a big table
    (kube-proxy's nat) costs little when we look at two chains of it.
    """

    def __init__(self, family: Family, table: str) -> None:
        self.family = family
        self.table = table
        self.policies: dict[str, str] = {}  # chain -> policy ("-" for user chains)
        self._lines: dict[str, list[str]] = {}
        self._rules: dict[str, list[list[str]]] = {}
        self._keys: dict[str, list[tuple[str, ...]]] = {}

    def chains(self) -> list[str]:
        return list(self.policies)

    def has_chain(self, chain: str) -> bool:
        return chain in self.policies

    def _parsed(self, chain: str) -> list[list[str]]:
        rules = self._rules.get(chain)
        if rules is None:
            rules = self._rules[chain] = [split_line(line) for line in self._lines.pop(chain, [])]
        return rules

    def _canonical(self, chain: str) -> list[tuple[str, ...]]:
        keys = self._keys.get(chain)
        if keys is None:
            keys = self._keys[chain] = [canonical(rule) for rule in self._parsed(chain)]
        return keys

    def rules(self, chain: str) -> list[list[str]]:
        """The chain's rules ([] when it does not exist)."""
        return [list(rule) for rule in self._parsed(chain)]

    def find(self, chain: str, rule: Sequence[str]) -> int:
        """Index of the first rule of ``chain`` equal to ``rule`` as iptables compares them, else -1."""
        key = canonical(rule)
        for index, other in enumerate(self._canonical(chain)):
            if other == key:
                return index
        return -1

    def has_rule(self, chain: str, rule: Sequence[str]) -> bool:
        return self.find(chain, rule) >= 0

    # changes, for TableEdit
    def _add_chain(self, chain: str) -> None:
        self.policies[chain] = "-"
        self._rules[chain], self._keys[chain] = [], []

    def _remove_chain(self, chain: str) -> None:
        self.policies.pop(chain, None)
        self._rules.pop(chain, None)
        self._keys.pop(chain, None)
        self._lines.pop(chain, None)

    def _insert(self, chain: str, index: int, rule: Sequence[str]) -> None:
        self._canonical(chain)
        self._rules[chain].insert(index, list(rule))
        self._keys[chain].insert(index, canonical(rule))

    def _delete(self, chain: str, index: int) -> None:
        self._canonical(chain)
        del self._rules[chain][index]
        del self._keys[chain][index]


def parse_save(text: str, table: str, family: Family = 4) -> TableState:
    """The ``table`` section of iptables-save output."""
    state = TableState(family, table)
    current = ""
    for line in text.splitlines():
        if line.startswith("*"):
            current = line[1:].strip()
        elif current != table:
            continue
        elif line.startswith(":"):
            name, _, rest = line[1:].partition(" ")
            state.policies[name] = rest.split(" ", 1)[0] or "-"
        elif line.startswith("-A "):
            name, _, rest = line[3:].partition(" ")
            state.policies.setdefault(name, "-")
            state._lines.setdefault(name, []).append(rest)
    return state


def save(family: Family, table: str) -> TableState:
    """Read ``table`` with one ``iptables-save -t <table>`` (ip6tables-save for 6)."""
    tool = "iptables-save" if family == 4 else "ip6tables-save"
    try:
        proc = subprocess.run([tool, "-t", table], capture_output=True, text=True, timeout=30)
    except FileNotFoundError as exc:
        raise IptablesError(f"{tool} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise IptablesError(f"{tool} -t {table} timed out") from exc
    if proc.returncode != 0:
        raise IptablesError(f"{tool} -t {table}: {proc.stderr.strip() or 'failed'}")
    return parse_save(proc.stdout, table, family)


def chain_known_missing(family: Family, table: str, chain: str) -> bool:
    """True when ``chain`` provably does not exist, known without running a tool (iptables-nft only)."""
    chains = nft_chains(family, table)
    return chains is not None and chain not in chains


# -- changes ----------------------------------------------------------------------


class TableEdit:
    """Changes to one table: restore lines, each applied at once to ``state`` (what the table will hold)."""

    def __init__(self, state: TableState) -> None:
        self.state = state
        self.lines: list[str] = []

    @property
    def family(self) -> Family:
        return self.state.family

    def rules(self, chain: str) -> list[list[str]]:
        return self.state.rules(chain)

    def has_chain(self, chain: str) -> bool:
        return self.state.has_chain(chain)

    def has_rule(self, chain: str, rule: Sequence[str]) -> bool:
        return self.state.has_rule(chain, rule)

    def ensure_chain(self, chain: str) -> None:
        if not self.state.has_chain(chain):
            self.lines.append(_restore_line("-N", chain))
            self.state._add_chain(chain)

    def insert(self, chain: str, rule: Sequence[str], position: int = 1) -> None:
        self.lines.append(_restore_line("-I", chain, str(position), *rule))
        self.state._insert(chain, position - 1, rule)

    def append(self, chain: str, rule: Sequence[str]) -> None:
        self.lines.append(_restore_line("-A", chain, *rule))
        self.state._insert(chain, len(self.state._parsed(chain)), rule)

    def insert_unique(self, chain: str, rule: Sequence[str], position: int = 1) -> None:
        if not self.state.has_rule(chain, rule):
            self.insert(chain, rule, position)

    def append_unique(self, chain: str, rule: Sequence[str]) -> None:
        if not self.state.has_rule(chain, rule):
            self.append(chain, rule)

    def delete(self, chain: str, rule: Sequence[str]) -> bool:
        """Delete the first copy of ``rule`` (as ``iptables -D`` does); False when there is none."""
        index = self.state.find(chain, rule)
        if index < 0:
            return False
        self.lines.append(_restore_line("-D", chain, *rule))
        self.state._delete(chain, index)
        return True

    def delete_all(self, chain: str, rule: Sequence[str]) -> int:
        count = 0
        while self.delete(chain, rule):
            count += 1
        return count

    def delete_chain(self, chain: str) -> bool:
        """Flush and delete ``chain`` when it exists (jumps to it must be deleted first)."""
        if not self.state.has_chain(chain):
            return False
        self.lines += [_restore_line("-F", chain), _restore_line("-X", chain)]
        self.state._remove_chain(chain)
        return True


def change(family: Family, table: str, build: Callable[[TableEdit], T], *, attempts: int = ATTEMPTS) -> T:
    """Read ``table``, let ``build`` queue changes, apply them in one restore; again if the table moved meanwhile.

    ``build`` must decide from ``edit.state`` alone (it runs again on a
    retry). Nothing to change: no restore.
    """
    for attempt in range(1, attempts + 1):
        edit = TableEdit(save(family, table))
        result = build(edit)
        if not edit.lines:
            return result
        try:
            save_restore.restore(family, table, edit.lines)
        except IptablesError:
            if attempt == attempts:
                raise
            continue
        return result
    raise AssertionError("unreachable")

