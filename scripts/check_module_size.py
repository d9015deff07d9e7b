"""Fail when a library module is longer than a reader takes in at one sitting (500 lines).

Run by ``make lint``. Lists every offender with its length, so the fix is obvious: split it by job.
"""

from __future__ import annotations

import sys
from pathlib import Path

LIMIT = 500


def main() -> int:
    root = Path(__file__).resolve().parents[1] / "pycni"
    too_long = sorted(
        (len(path.read_text().splitlines()), path.relative_to(root.parent))
        for path in root.rglob("*.py")
        if len(path.read_text().splitlines()) > LIMIT
    )
    for lines, path in too_long:
        print(f"{path}: {lines} lines (limit {LIMIT}): split it by job")
    return 1 if too_long else 0


if __name__ == "__main__":
    sys.exit(main())
