"""portmap's nftables I/O: reads the table and writes a plan (nft_backend's pure functions decide).

The table is read straight over nfnetlink (``net.firewall.nft_sets``: its
sets, their elements and its rules' comments), and a plan that changes only
elements (every ADD and DEL once a network's maps exist) is written as one
nfnetlink batch. libnftables would first fetch and render a cache of the
whole ruleset for each command: on a node running NetworkPolicy (a table of
thousands of chains and sets) ~8 ms per element change instead of ~0.1.
Declarations, rules and teardown still go through libnftables as nft
script, and so does everything when the table holds a set nft_sets cannot
decode, or when a test hands in a fake runner.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from pycni.net.errors import NetError
from pycni.plugins.common import parse_owner_tag
from pycni.plugins.portmap.conf import Attachment, FamilyTarget, Forward, PortMapConf
from pycni.plugins.portmap.nft_backend import (
    FAMILY,
    TABLE,
    Element,
    Plan,
    Rule,
    TableState,
    check_state,
    forwards_from,
    parse_state,
    plan_forward,
    plan_remove,
)
from pycni.spec.errors import CniError

if TYPE_CHECKING:
    from pycni.net.firewall.nft_sets import SetElement, SetView, TableView

__all__ = ["NftBackend", "NftRunner"]

log = logging.getLogger("pycni.portmap")


class NftRunner(Protocol):
    """What the backend needs from pycni.net.nft (a fake in tests)."""

    def list_json(self, what: str) -> list[dict[str, Any]]: ...

    def apply(self, script: str) -> None: ...


class NftBackend:
    """forward / check / unforward / gc over the kernel's ruleset."""

    def __init__(self, runner: NftRunner | None = None, lock: Callable[[], Any] | None = None) -> None:
        self._kernel = runner is None  # nfnetlink directly; a fake runner sees every read and write
        if runner is None:
            from pycni.net.firewall import nft

            runner = nft
        self._nft = runner
        self._lock = lock or _default_lock
        self._sets: dict[str, SetView] | None = None  # by name, from the last nfnetlink read

    def _read(self) -> TableState:
        self._sets = None
        if self._kernel:
            from pycni.net.firewall import nft_sets

            try:
                view = nft_sets.read_table(FAMILY, TABLE)
            except NetError as exc:  # a set nft_sets does not decode: libnftables does
                log.debug("portmap: reading %s %s through libnftables: %s", FAMILY, TABLE, exc)
            else:
                self._sets = dict(view.sets) if view is not None else {}
                return _state(view)
        return parse_state(self._nft.list_json(f"table {FAMILY} {TABLE}"))

    def _write(self, plan: Plan) -> None:
        if not plan.lines and self._sets is not None and (plan.deletes or plan.adds):
            from pycni.net.firewall import nft_sets

            sets = self._sets

            def pairs(elements: Sequence[Element]) -> list[tuple[SetView, SetElement]]:
                return [(sets[e.set], nft_sets.SetElement(e.key, e.value, e.comment)) for e in elements]

            try:
                nft_sets.change_elements(FAMILY, TABLE, pairs(plan.deletes), pairs(plan.adds))
                return
            except (NetError, KeyError) as exc:  # libnftables says it again, in nft's words, or succeeds
                log.debug("portmap: element batch refused (%s); as nft script", exc)
        script = plan.script()
        if script:
            self._nft.apply(script)

    def forward(self, att: Attachment, targets: Sequence[FamilyTarget], conf: PortMapConf) -> None:
        with self._lock():
            self._write(plan_forward(self._read(), att, targets, conf))

    def check(self, att: Attachment, targets: Sequence[FamilyTarget], conf: PortMapConf) -> None:
        problems = check_state(self._read(), att, targets, conf)
        if problems:
            raise CniError(f"portmap: nftables rules of {att.tag} are incomplete: {problems[0]}", "; ".join(problems))

    def unforward(self, att: Attachment) -> list[Forward]:
        return self._remove(att.network, lambda comment: comment == att.tag)

    def gc(self, network: str, valid: set[tuple[str, str]]) -> list[Forward]:
        def stale(comment: str) -> bool:
            parsed = parse_owner_tag(comment)
            return parsed is not None and parsed[0] == "portmap" and (parsed[2], parsed[3]) not in valid

        return self._remove(network, stale, drop_empty=True)

    def _remove(self, network: str, owned: Callable[[str], bool], *, drop_empty: bool = False) -> list[Forward]:
        plan = plan_remove(self._read(), network, owned, drop_empty=drop_empty)
        if not plan.deletes and not plan.lines:  # nothing of ours: no lock, no write
            return []
        with self._lock():
            try:  # what we read is almost always still true: removing by key fails as a whole if not
                self._write(plan)
            except NetError:
                plan = plan_remove(self._read(), network, owned, drop_empty=drop_empty)
                self._write(plan)
        return forwards_from(plan.deletes)


def _state(view: TableView | None) -> TableState:
    """A ``TableState`` from what ``nft_sets.read_table`` read (None: no table)."""
    if view is None:
        return TableState()
    elements = tuple(Element(name, e.key, e.value, e.comment) for name, s in view.sets.items() for e in s.elements)
    rules = tuple(Rule(r.chain, r.handle, r.comment) for r in view.rules)
    return TableState(True, frozenset(view.sets), elements, rules)


def _default_lock() -> Any:
    from pycni.rundir import host_lock

    return host_lock("portmap-nft")
