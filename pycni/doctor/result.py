"""One check's verdict, and the helpers checks build it with. Pure.

``CheckResult.to_wire()`` is the JSON contract of ``pycni doctor --json``:
``{"id", "status": "pass"|"warn"|"fail"|"skip", "summary", "evidence", "fix"}``
with ``evidence`` a list of lines (what was found) and ``fix`` one command or
action ("" when there is nothing to do).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

__all__ = ["CheckResult", "Status", "fail", "passed", "skip", "warn"]

Status = Literal["pass", "warn", "fail", "skip"]


@dataclass(frozen=True)
class CheckResult:
    id: str
    status: Status
    summary: str
    evidence: tuple[str, ...] = ()
    fix: str = ""

    def to_wire(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "summary": self.summary, "evidence": list(self.evidence),
                "fix": self.fix}

    def see(self, root: str) -> CheckResult:
        """The same verdict, pointing at the root cause that explains it."""
        return replace(self, summary=f"{self.summary} (see {root})")


def passed(check_id: str, summary: str, evidence: Sequence[str] = ()) -> CheckResult:
    return CheckResult(check_id, "pass", summary, tuple(evidence))


def warn(check_id: str, summary: str, evidence: Sequence[str] = (), fix: str = "") -> CheckResult:
    return CheckResult(check_id, "warn", summary, tuple(evidence), fix)


def fail(check_id: str, summary: str, evidence: Sequence[str] = (), fix: str = "") -> CheckResult:
    return CheckResult(check_id, "fail", summary, tuple(evidence), fix)


def skip(check_id: str, why: str) -> CheckResult:
    return CheckResult(check_id, "skip", why)
