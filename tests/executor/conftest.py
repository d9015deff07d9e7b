"""Fixtures for the executor's root tests: a real daemon on a private socket, real namespaces.

The lab and namespace fixtures are tests/integration's (unique names,
cleanup even on failure); every lab gets random subnets no one on the host
uses, since other test runs may share the machine.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.executor.running import RunningExecutor, start_executor
from tests.integration.conftest import _kernel_prerequisites, make_netns  # noqa: F401  (fixtures)
from tests.integration.plugin_helpers import relocate
from tests.support.cnilab import CniLab
from tests.support.host import run


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.root)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[CniLab]:
    """tests/integration's lab (own dirs, unique bridge) on subnets nobody on this machine uses."""
    the_lab = relocate(CniLab(root=tmp_path, bridge=f"pcx{uuid.uuid4().hex[:8]}", subnet4="", gateway4="",
                              subnet6=""))
    yield the_lab
    run("ip", "link", "delete", the_lab.bridge, check=False)


@pytest.fixture
def executor_factory() -> Iterator[Callable[..., RunningExecutor]]:
    """Start executors (``factory(*cli_args, directory=None)``); each is stopped by PID at teardown."""
    started: list[RunningExecutor] = []

    def start(*args: str, directory: Path | None = None) -> RunningExecutor:
        running = start_executor(*args, directory=directory)
        started.append(running)
        return running

    yield start
    for running in reversed(started):
        running.stop(remove=False)
    for directory in {r.directory for r in started}:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def executor(executor_factory: Callable[..., RunningExecutor]) -> RunningExecutor:
    return executor_factory()
