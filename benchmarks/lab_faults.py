"""How long `pycni lab break`, `heal` and `lab doctor` take per fault, against doctor on the healthy node.

Run as root: ``.venv/bin/python benchmarks/lab_faults.py``. Builds a two-node vxlan lab (one pod per node)
in a temporary directory, times doctor (``--json``, no probes, the whole command with Python's start) on the
healthy node first (the reference), then for every fault: break, doctor, heal (which for faults made with
the agent stopped includes restarting it and waiting for its first reconcile). Prints one row per fault
and the medians, each with its ratio to the healthy doctor run.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pycni.cluster.lab import Lab
from pycni.cluster.lab_faults import FAULTS, break_fault, doctor_command, heal_faults

NODE = "n1"


def timed(fn: Callable[[], object]) -> float:
    start = time.monotonic()
    fn()
    return time.monotonic() - start


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="pycni-bench-faults-") as root:
        lab = Lab.up(2, "vxlan", root=root)
        try:
            for node in ("n1", "n2"):
                lab.add_pod(node, f"{node}-p1")

            def doctor() -> None:
                proc = subprocess.run(doctor_command(lab.state, NODE, ["--json"]),
                                      capture_output=True, text=True, check=False, timeout=120)
                if proc.returncode not in (0, 1):
                    raise SystemExit(f"doctor could not run: {proc.stderr}")

            healthy = statistics.median(timed(doctor) for _ in range(5))
            print(f"doctor, healthy node (reference): {healthy:.2f} s (median of 5)")
            rows = []
            for name, fault in FAULTS.items():
                if fault.backends and lab.state.backend not in fault.backends:
                    continue  # another backend's fault (bird: bgp only)
                b = timed(lambda name=name: break_fault(lab, NODE, name))
                d = timed(doctor)
                h = timed(lambda: heal_faults(lab, NODE))
                rows.append((name, fault.stop_agent, b, d, h))
                print(f"{name:18} break {b:5.2f} s  doctor {d:5.2f} s ({d / healthy:.2f}x)  heal {h:5.2f} s"
                      f"{'  (agent restarted)' if fault.stop_agent else ''}")
            for label, keep in (("agent kept", False), ("agent stopped", True)):
                sel = [r for r in rows if r[1] == keep]
                b, d, h = (statistics.median(r[i] for r in sel) for i in (2, 3, 4))
                print(f"median, {len(sel)} faults with the {label}: break {b:.2f} s ({b / healthy:.2f}x), "
                      f"doctor {d:.2f} s ({d / healthy:.2f}x), heal {h:.2f} s ({h / healthy:.2f}x)")
        finally:
            lab.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
