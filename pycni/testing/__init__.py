"""In-memory fakes for pycni's seams, for tests of pycni and of code built on it.

- ``exec``: ``FakeExec``, a ``pycni.runtime.invoke.PluginExec`` whose
  plugins are Python functions (with ``returns_result``, ``passes_through``).
- ``kv``: ``MemoryKV``, the cluster's ``KV`` seam with etcd's semantics
  (revisions, leases, watches, compaction, outages) in a dict.
- ``nft``: ``FakeNft``, an nft runner replaying a fixed listing.
- ``iptables``: ``FakeIptables`` (a nat-table runner) and ``FakeSaveRestore``
  (iptables-save/-restore under ``pycni.net.iptables_state``).

Every name is importable from here (``from pycni.testing import FakeExec``);
each submodule is imported on first use, so a test of the cluster code does
not load the runtime library. No production module imports this package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pycni.testing.exec import FakeCall, FakeExec, Handler, passes_through, returns_result
    from pycni.testing.iptables import FakeIptables, FakeSaveRestore
    from pycni.testing.kv import MemoryKV
    from pycni.testing.nft import FakeNft

__all__ = [
    "FakeCall",
    "FakeExec",
    "FakeIptables",
    "FakeNft",
    "FakeSaveRestore",
    "Handler",
    "MemoryKV",
    "passes_through",
    "returns_result",
]

_HOMES = {
    "FakeCall": "exec",
    "FakeExec": "exec",
    "Handler": "exec",
    "passes_through": "exec",
    "returns_result": "exec",
    "FakeIptables": "iptables",
    "FakeSaveRestore": "iptables",
    "MemoryKV": "kv",
    "FakeNft": "nft",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'pycni.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(f"pycni.testing.{home}"), name)
