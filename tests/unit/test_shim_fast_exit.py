"""The in-process fallback's exit (pycni.executor.shim._exit_now): SystemExit's status and output, without teardown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = str(Path(__file__).resolve().parents[2])


def _run(body: str) -> subprocess.CompletedProcess[str]:
    code = f"import sys; sys.path.insert(0, {ROOT!r})\nfrom pycni.executor.shim import _exit_now\n{body}\n"
    return subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=False)


@pytest.mark.parametrize(("code", "status"), [("None", 0), ("0", 0), ("7", 7), ("256 + 3", 3)])
def test_status_and_output_as_systemexit_gives_them(code: str, status: int) -> None:
    proc = _run(f"print('out', end=''); print('err', file=sys.stderr, end='')\n_exit_now(SystemExit({code}))\n"
                "print('not reached')")
    assert (proc.returncode, proc.stdout, proc.stderr) == (status, "out", "err")


def test_teardown_is_skipped() -> None:
    proc = _run("class Noisy:\n    def __del__(self):\n        print('teardown ran')\nkeep = Noisy()\n"
                "_exit_now(SystemExit(0))")
    assert (proc.returncode, proc.stdout) == (0, "")


@pytest.mark.parametrize(
    "setup",
    [
        "import atexit; atexit.register(print, 'atexit ran')",
        "import threading, time; threading.Thread(target=time.sleep, args=(0.2,)).start()",
        "pass  # a message, not a status",
    ],
)
def test_the_normal_exit_when_something_is_left_for_it(setup: str) -> None:
    status = "'bye'" if "message" in setup else "0"
    proc = _run(f"{setup}\n_exit_now(SystemExit({status}))\nprint('returned')")
    assert "returned" in proc.stdout and proc.returncode == 0


@pytest.mark.parametrize(("argv", "collecting"), [(["-c"], False), (["-c", "daemon"], True)])
def test_a_single_call_runs_without_the_cyclic_collector(argv: list[str], collecting: bool) -> None:
    proc = _run(
        f"import gc, pycni.plugins\n"
        f"pycni.plugins.run = lambda plugin_type: print(gc.isenabled())\n"
        f"sys.argv = {argv!r}\n"
        "from pycni.executor.shim import _run_in_process\n"
        "_run_in_process('bridge', None)\n"
    )
    assert (proc.returncode, proc.stdout.strip()) == (0, str(collecting)), proc.stderr
