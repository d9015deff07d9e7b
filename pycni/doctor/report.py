"""How doctor's verdicts are printed: one line per check for people, or one JSON document. Pure.

People: ``✔`` pass, ``!`` warn, ``✖`` fail, ``-`` skip, then the id and the
summary; under a warning or failure ``why:`` lines (the evidence) and one
``fix:`` line; a footer with the counts. JSON: ``{"node": ..., "checks":
[{"id", "status", "summary", "evidence", "fix"}], "summary": {status: count},
"seconds": ...}``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

from pycni.doctor.result import CheckResult

__all__ = ["GLYPHS", "render_json", "render_text"]

GLYPHS = {"pass": "✔", "warn": "!", "fail": "✖", "skip": "-"}


def render_text(node: str, results: Sequence[CheckResult], seconds: float, *, verbose: bool = False) -> str:
    width = max((len(r.id) for r in results), default=0)
    lines = [f"pycni doctor: node {node}"]
    for r in results:
        lines.append(f"{GLYPHS[r.status]} {r.id.ljust(width)}  {r.summary}")
        if r.status in ("warn", "fail") or verbose:
            lines += [f"    why: {line}" for line in r.evidence]
            if r.fix:
                lines.append(f"    fix: {r.fix}")
    counts = Counter(r.status for r in results)
    lines.append(f"{counts['fail']} failed, {counts['warn']} warning(s), {counts['pass']} passed, "
                 f"{counts['skip']} skipped in {seconds:.2f}s")
    return "\n".join(lines) + "\n"


def render_json(node: str, results: Sequence[CheckResult], seconds: float) -> str:
    counts = Counter(r.status for r in results)
    doc = {"node": node, "checks": [r.to_wire() for r in results],
           "summary": {s: counts[s] for s in ("pass", "warn", "fail", "skip")}, "seconds": round(seconds, 3)}
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
