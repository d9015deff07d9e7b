"""Fixtures for tests that need root and a real kernel.

Every kernel object gets a unique name and is removed at teardown, even
when the test fails. Configs, the result cache and IPAM data live in the
test's tmp_path, never in /etc/cni/net.d, /opt/cni/bin or /var/lib/cni.

Without root (or without Debian's reference plugins) the tests skip; in CI
``PYCNI_REQUIRE_KERNEL_TESTS=1`` turns those skips into failures so a broken
setup cannot pass silently.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.cnilab import GO_PLUGIN_DIR, CniLab, use_free_subnets
from tests.support.host import run
from tests.support.netns import Netns, netns_factory


def _missing_prerequisite() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if not shutil.which("ip"):
        return "needs iproute2 ('ip')"
    if not os.path.exists(f"{GO_PLUGIN_DIR}/bridge"):
        return f"needs Debian's containernetworking-plugins in {GO_PLUGIN_DIR}"
    return None


@pytest.fixture(autouse=True)
def _kernel_prerequisites() -> None:
    reason = _missing_prerequisite()
    if reason is None:
        return
    if os.environ.get("PYCNI_REQUIRE_KERNEL_TESTS") == "1":
        pytest.fail(f"kernel test prerequisite missing: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session", autouse=True)
def _pycni_executor() -> Iterator[None]:
    """PYCNI_TEST_EXECUTOR=1: every pycni plugin call of the run goes through one warm executor.

    One executor per test process on a private socket: shims the labs install
    carry that socket, and PYCNI_EXECUTOR_SOCKET is exported for whatever execs
    them. The executor must survive the whole run.
    """
    if os.environ.get("PYCNI_TEST_EXECUTOR") != "1" or _missing_prerequisite() is not None:
        yield
        return
    from tests.executor.running import start_executor

    executor = start_executor()
    os.environ["PYCNI_EXECUTOR_SOCKET"] = str(executor.socket)
    try:
        yield
    finally:
        os.environ.pop("PYCNI_EXECUTOR_SOCKET", None)
        alive = executor.alive()
        executor.stop()
    assert alive, f"the executor died during the run: {executor.stderr()}"


@pytest.fixture
def make_netns() -> Iterator[Callable[[], Netns]]:
    """Factory for fresh named network namespaces, deleted at teardown."""
    yield from netns_factory("pycni-t-")


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[CniLab]:
    lab = use_free_subnets(
        CniLab(root=tmp_path, bridge=f"pcb{uuid.uuid4().hex[:6]}", subnet4="", gateway4="", subnet6="")
    )
    yield lab
    # The bridge plugin never deletes the bridge (by design); the test does.
    run("ip", "link", "delete", lab.bridge, check=False)
