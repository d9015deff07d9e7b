"""``pycni doctor`` on a real node: a two-node vxlan lab (one per test module), doctor run in node n1's namespace.

Needs root, iproute2, ping, nft and etcd. Without them the tests skip;
``PYCNI_REQUIRE_KERNEL_TESTS=1`` (CI) turns the skip into a failure. The lab
lives under the run's temp dir and is torn down at the end of the module;
the teardown asserts nothing of it is left.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from pycni.cluster.lab import Lab
from tests.cluster.conftest import leftovers
from tests.support.prerequisites import skip_or_fail


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    for tool in ("ip", "ping", "etcd", "nft"):
        if shutil.which(tool) is None:
            return f"needs '{tool}' (Debian: iproute2, iputils-ping, etcd-server, nftables)"
    return None


@pytest.fixture(autouse=True)
def _prerequisites() -> None:
    reason = _missing()
    if reason is None:
        return
    skip_or_fail(reason, f"doctor test prerequisite missing: {reason}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if _missing() is not None:
        pytest.skip(_missing() or "")
    lab = Lab.up(2, "vxlan", root=str(tmp_path_factory.mktemp("doctor-lab")))
    try:
        lab.add_pod("n1", "web")
        lab.add_pod("n2", "db")
    except BaseException:
        lab.down()
        raise
    yield lab
    lab_id = lab.state.id
    lab.down()
    assert leftovers(lab_id) == []
