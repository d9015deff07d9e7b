"""Rulesets to nft scripts: the whole table, or the smallest change between two.

Contract: pure. ``render_full(new)`` replaces whatever pycni's table holds
with ``new`` in one transaction (add, delete and re-add the table: the
idiom works whether or not the table exists). ``render_diff(old, new)`` is
the transaction that turns a table holding exactly ``old`` into ``new``,
touching only what differs: a pod added or a label changed costs set and
map elements, a policy edited costs its own chains. Empty when nothing
changed. Order inside a transaction follows what nft needs to resolve
references: new sets and maps, set elements, new (empty) chains, changed
chains flushed and refilled, new chains filled, map elements, then
removed chains (all flushed before any is deleted, so jumps between them
go first), then removed sets and maps.
"""

from __future__ import annotations

from collections.abc import Iterable

from pycni.policy.ruleset import FAMILY, TABLE, Chain, Map, Ruleset, Set

__all__ = ["ElementChange", "count_changes", "element_changes", "render_diff", "render_full"]

_T = f"{FAMILY} {TABLE}"
_CHUNK = 1000  # elements per command: keeps each netlink message well inside its size limit


def _set_decl(s: Set) -> str:
    flags = " flags interval;" if s.interval else ""
    return f"add set {_T} {s.name} {{ type {s.type};{flags} }}"


def _map_decl(m: Map) -> str:
    return f"add map {_T} {m.name} {{ type {m.type}; }}"


def _chain_decl(c: Chain) -> str:
    return f"add chain {_T} {c.name}" + (f" {{ {c.hook} }}" if c.hook else "")


def _elements(verb: str, name: str, items: Iterable[str]) -> list[str]:
    ordered = sorted(items)
    return [
        f"{verb} element {_T} {name} {{ {', '.join(ordered[i:i + _CHUNK])} }}"
        for i in range(0, len(ordered), _CHUNK)
    ]


def _map_items(pairs: Iterable[tuple[str, str]]) -> list[str]:
    return [f"{key} : {verdict}" for key, verdict in pairs]


def _rules(c: Chain) -> list[str]:
    return [f"add rule {_T} {c.name} {rule}" for rule in c.rules]


def render_full(new: Ruleset) -> str:
    lines = [f"add table {_T}", f"delete table {_T}", f"add table {_T}"]
    lines += [_set_decl(s) for s in new.sets.values()]
    lines += [_map_decl(m) for m in new.maps.values()]
    for s in new.sets.values():
        lines += _elements("add", s.name, s.elements)
    lines += [_chain_decl(c) for c in new.chains.values()]
    for c in new.chains.values():
        lines += _rules(c)
    for m in new.maps.values():
        lines += _elements("add", m.name, _map_items(m.elements))
    return "\n".join(lines) + "\n"


def render_diff(old: Ruleset, new: Ruleset) -> str:
    lines: list[str] = []
    # Sets and maps that appear, then every set's element changes.
    lines += [_set_decl(s) for name, s in new.sets.items() if name not in old.sets]
    lines += [_map_decl(m) for name, m in new.maps.items() if name not in old.maps]
    for name, s in new.sets.items():
        if old.sets.get(name) is s:
            continue  # the compiler kept it: nothing can differ
        before = old.sets[name].elements if name in old.sets else frozenset()
        lines += _elements("delete", name, before - s.elements)
        lines += _elements("add", name, s.elements - before)
    # Chains: declare new ones first (a changed chain may jump to a new one).
    added = [c for name, c in new.chains.items() if name not in old.chains]
    changed = [c for name, c in new.chains.items()
               if name in old.chains and old.chains[name] is not c and old.chains[name] != c]
    lines += [_chain_decl(c) for c in added]
    for c in changed:
        lines.append(f"flush chain {_T} {c.name}")
        lines += _rules(c)
    for c in added:
        lines += _rules(c)
    # Verdict map elements: removed or re-pointed ones out, then the new ones in.
    for name, m in new.maps.items():
        was = dict(old.maps[name].elements) if name in old.maps else {}
        now = dict(m.elements)
        gone = [k for k, v in was.items() if now.get(k) != v]
        came = [(k, v) for k, v in now.items() if was.get(k) != v]
        lines += _elements("delete", name, gone)
        lines += _elements("add", name, _map_items(came))
    # Removed chains: flush all, then delete all (jumps between them go with the flush).
    removed = [name for name in old.chains if name not in new.chains]
    lines += [f"flush chain {_T} {name}" for name in removed]
    lines += [f"delete chain {_T} {name}" for name in removed]
    lines += [f"delete set {_T} {name}" for name in old.sets if name not in new.sets]
    lines += [f"delete map {_T} {name}" for name in old.maps if name not in new.maps]
    return "\n".join(lines) + "\n" if lines else ""


ElementChange = tuple[Set, frozenset[str], frozenset[str]]  # a set, its elements to delete, to add


def element_changes(old: Ruleset, new: Ruleset, limit: int = 2000) -> list[ElementChange] | None:
    """``render_diff(old, new)`` as element changes of plain (non-interval) sets, when that is all it holds.

    None when anything else differs (a set, map or chain added, removed or changed; an interval set's
    elements, which the kernel stores as ranges libnftables merges; more than ``limit`` elements): the
    diff is then written as nft script. What a label change or a pod's arrival usually is: pods'
    addresses in and out of peer sets and named-port sets.
    """
    if (old.sets.keys() != new.sets.keys() or old.maps.keys() != new.maps.keys()
            or old.chains.keys() != new.chains.keys()):
        return None
    for name, c in new.chains.items():
        if old.chains[name] is not c and old.chains[name] != c:
            return None
    for name, m in new.maps.items():
        if old.maps[name] is not m and old.maps[name].elements != m.elements:
            return None
    changes: list[ElementChange] = []
    count = 0
    for name, s in new.sets.items():
        before = old.sets[name]
        if before is s or before.elements == s.elements:
            continue
        if s.interval or before.interval or before.type != s.type:
            return None
        gone, came = before.elements - s.elements, s.elements - before.elements
        count += len(gone) + len(came)
        if count > limit:
            return None
        changes.append((s, gone, came))
    return changes


def count_changes(script: str) -> int:
    """How many nft commands a script holds (what an incremental update cost)."""
    return sum(1 for line in script.splitlines() if line.strip())
