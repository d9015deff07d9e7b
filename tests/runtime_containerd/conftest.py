"""A second real runtime as a fixture: a private containerd 1.6 whose ``ctr run --cni`` runs pycni's plugins.

The environment, and what was learnt about ctr and containerd building it,
is ``tests.support.containerd``; here are only its fixtures, one per module
(starting containerd and importing the image take well under a second, the
containers' runs are the tests' own time):

- ``pycni_bin`` (module): pycni's shims for bridge, host-local and loopback;
- ``containerd`` (module, twice): a set-up ``Containerd`` whose
  /etc/cni/net.d holds one conflist (pycni's bridge + host-local on a subnet
  nobody here uses, a unique bridge, its own dataDir); closing it fails the
  module's teardown if anything was left behind. Its shims run the plugins
  in-process (``PYCNI_EXECUTOR_SOCKET`` empty), then, in the second run,
  through a private ``pycni executor`` (``containerd.executor``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.executor.running import start_executor
from tests.support.containerd import Containerd, bridge_conflist, require_containerd
from tests.support.host import link_exists, run
from tests.support.subnets import worker_subnet4


@pytest.fixture(scope="module")
def pycni_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pycni.executor.install import install_plugins

    bin_dir = tmp_path_factory.mktemp("pycni-bin")
    install_plugins(bin_dir, ("bridge", "host-local", "loopback"))
    return bin_dir


@pytest.fixture(scope="module", params=["in-process", "executor"])
def containerd(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
               pycni_bin: Path) -> Iterator[Containerd]:
    require_containerd()
    root = tmp_path_factory.mktemp("ctrd")
    bridge = f"pcct{uuid.uuid4().hex[:8]}"
    conflist = bridge_conflist(f"ctrnet-{uuid.uuid4().hex[:6]}", bridge, worker_subnet4(), root / "ipam")
    executor = start_executor() if request.param == "executor" else None
    socket = str(executor.socket) if executor is not None else ""
    ctrd = Containerd(root / "world", conflist, pycni_bin, env={"PYCNI_EXECUTOR_SOCKET": socket})
    ctrd.executor = executor
    try:
        ctrd.setup()
        yield ctrd
    finally:
        problems = ctrd.close()
        if executor is not None:
            executor.stop()
        if link_exists(bridge):
            run("ip", "link", "delete", bridge, check=False)
    assert not problems, "containerd teardown left things behind:\n" + "\n".join(problems)
