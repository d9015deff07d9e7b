"""In-memory iptables tools, for tests of code that reads and rewrites iptables tables.

- ``FakeIptables`` stands where the kernel runner of portmap's iptables
  backend would (``list_nat`` / ``restore``): the IPv4 nat table is a fixed
  list of ``iptables -S`` lines, IPv6's is unusable (None), and every
  ``restore`` is recorded.
- ``FakeSaveRestore`` replaces ``iptables-save`` and ``iptables-restore``
  under ``pycni.net.iptables_state`` (through a ``monkeypatch``-like
  ``setattr`` that undoes itself): each save answers the next of a list of
  iptables-save texts (the last one again once they run out), each restore
  is recorded and the first ``failures`` of them fail as a rule that
  vanished meanwhile would::

      tool = FakeSaveRestore(monkeypatch, [SAVE, SAVE_WITHOUT_THE_RULE], failures=1)
      iptables_state.change(4, "filter", build)
      assert tool.saves == 2
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pycni.net.firewall.iptables.state import TableState

__all__ = ["FakeIptables", "FakeSaveRestore"]


class FakeIptables:
    """iptables for the IPv4 nat table only: fixed ``-S`` lines, restores recorded."""

    def __init__(self, lines: Sequence[str]) -> None:
        self.lines = list(lines)
        self.restored: list[tuple[int, list[str]]] = []

    def list_nat(self, family: int) -> list[str] | None:
        return self.lines if family == 4 else None

    def restore(self, family: int, lines: Sequence[str]) -> None:
        self.restored.append((family, list(lines)))


class Patcher(Protocol):
    """What ``FakeSaveRestore`` needs of pytest's ``monkeypatch``: a setattr undone after the test."""

    def setattr(self, target: object, name: str, value: object) -> None: ...


class FakeSaveRestore:
    """save() and restore() over a list of iptables-save texts; restores fail as told."""

    def __init__(self, patcher: Patcher, texts: list[str], failures: int = 0) -> None:
        from pycni.net.firewall.iptables import save_restore as iptables_restore
        from pycni.net.firewall.iptables import state as iptables_state

        self.texts, self.failures = texts, failures
        self.saves = 0
        self.restores: list[list[str]] = []
        self._parse = iptables_state.parse_save
        patcher.setattr(iptables_state, "save", self.save)
        patcher.setattr(iptables_restore, "restore", self.restore)

    def save(self, family: int, table: str) -> TableState:
        text = self.texts[min(self.saves, len(self.texts) - 1)]
        self.saves += 1
        return self._parse(text, table)

    def restore(self, family: int, table: str, lines: Sequence[str]) -> None:
        from pycni.net.firewall.iptables.tool import IptablesError

        self.restores.append(list(lines))
        if self.failures:
            self.failures -= 1
            raise IptablesError("iptables-restore: line 2 failed: Bad rule (does a matching rule exist ...?).")
