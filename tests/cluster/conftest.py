"""Multi-node tests on the lab: one lab of 3 nodes x 2 pods per backend (per xdist worker), reused by a module.

Needs root, iproute2, ping and etcd (Debian's etcd-server). Without them the
tests skip; ``PYCNI_REQUIRE_KERNEL_TESTS=1`` (CI) turns the skip into a
failure. Every lab lives under the test run's temp dir and is torn down at
the end of its module; the teardown asserts nothing of it is left.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pycni.cluster.lab import Lab


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    for tool in ("ip", "ping", "etcd"):
        if shutil.which(tool) is None:
            return f"needs '{tool}' (Debian: iproute2, iputils-ping, etcd-server)"
    return None


@pytest.fixture(autouse=True)
def _prerequisites() -> None:
    reason = _missing()
    if reason is None:
        return
    if os.environ.get("PYCNI_REQUIRE_KERNEL_TESTS") == "1":
        pytest.fail(f"cluster test prerequisite missing: {reason}")
    pytest.skip(reason)


def leftovers(lab_id: str) -> list[str]:
    """Namespaces and processes of a lab that still exist."""
    found = [f"netns {n}" for n in os.listdir("/run/netns") if n.startswith(lab_id + "-")] if os.path.isdir(
        "/run/netns") else []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if lab_id.encode() in cmdline:
            shown = cmdline.replace(b"\0", b" ")[:120]
            found.append(f"process {pid}: {shown!r}")
    return found


def build_lab(root: Path, backend: str, nodes: int = 3, pods_per_node: int = 2) -> Lab:
    lab = Lab.up(nodes, backend, root=str(root))
    try:
        for node in sorted(lab.state.nodes):
            for i in range(pods_per_node):
                lab.add_pod(node, f"{node}-p{i + 1}")
    except BaseException:
        lab.down()
        raise
    return lab


@pytest.fixture(scope="module", params=["vxlan", "host-gw"])
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if _missing() is not None:
        pytest.skip(_missing() or "")
    lab = build_lab(tmp_path_factory.mktemp(f"lab-{request.param}"), request.param)
    yield lab
    lab_id = lab.state.id
    lab.down()
    assert leftovers(lab_id) == []
