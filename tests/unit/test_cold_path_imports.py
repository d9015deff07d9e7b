"""A cold bridge + host-local call (no executor: the shim runs the plugin in-process) keeps off the costly imports.

Issue 15's budget for that call is 50 ms from exec to exit; python itself
takes ~12 ms of it. These modules cost it 3-35 ms each (``benchmarks/cold.py
--imports``): pyroute2's package pulls in logging and multiprocessing,
dataclasses pulls in inspect and ast, typing, json and socket pull in re
and enum. This test imports what such a call imports, in a fresh
``python -I -S`` as the shim runs it, and names any that came back.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

COLD_MODULES = [
    "pycni.executor.shim",
    "pycni.plugins",
    "pycni.skel",
    "pycni.plugins.bridge.plugin",
    "pycni.plugins.bridge.conf",
    "pycni.plugins.bridge.gateway",
    "pycni.plugins.bridge.teardown",
    "pycni.ipam.delegate",
    "pycni.ipam.host_local.plugin",
    "pycni.ipam.host_local.allocator",
    "pycni.ipam.host_local.store",
    "pycni.net.bridge",
    "pycni.net.veth",
    "pycni.net.links",
    "pycni.net.addrs",
    "pycni.net.routes",
    "pycni.net.configure",
    "pycni.net.sysctl",
    "pycni.net.netns",
    "pycni.net.netlink.messages",
    "pycni.spec.result",
    "pycni.spec.config",
]
COSTLY = ["pyroute2", "dataclasses", "inspect", "typing", "json", "re", "enum", "socket", "logging"]


def test_the_cold_path_imports_none_of_the_costly_modules() -> None:
    root = str(Path(__file__).resolve().parents[2])
    code = (
        f"import importlib, sys; sys.path.insert(0, {root!r})\n"
        f"for name in {COLD_MODULES!r}: importlib.import_module(name)\n"
        f"print(' '.join(name for name in {COSTLY!r} if name in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == []
