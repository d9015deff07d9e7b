"""Fixtures for pycni.net kernel tests: real namespaces, real links, always cleaned up.

Every test builds its world in namespaces of its own (``make_netns``); the
usual pattern is a throwaway "host" namespace plus one or more "container"
namespaces, so the machine's real interfaces and routes are never touched.
Deleting a namespace destroys every link in it, and each fixture deletes
what it created even when the test fails. A session check asserts that no
namespace or host link registered by these tests survives.

Without root the tests skip; ``PYCNI_REQUIRE_KERNEL_TESTS=1`` turns the skip
into a failure so a broken CI setup cannot pass silently.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator

import pytest

from tests.support.host import link_exists, netns_names, run
from tests.support.netns import Netns, netns_factory, unique

NETNS_PREFIX = "pycni-n-"

# Names this worker created, for the end-of-session leak check.
_created_netns: set[str] = set()
_created_host_links: set[str] = set()


def _missing_prerequisite() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if not shutil.which("ip"):
        return "needs iproute2 ('ip')"
    return None


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("PYCNI_REQUIRE_KERNEL_TESTS") == "1":
        pytest.fail(f"kernel test prerequisite missing: {reason}")
    pytest.skip(reason)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.root)


@pytest.fixture(autouse=True)
def _kernel_prerequisites() -> None:
    reason = _missing_prerequisite()
    if reason is not None:
        _skip_or_fail(reason)


@pytest.fixture(scope="session", autouse=True)
def _no_leftovers() -> Iterator[None]:
    yield
    if _missing_prerequisite() is not None:
        return
    leaked_ns = _created_netns & netns_names()
    leaked_links = {name for name in _created_host_links if link_exists(name)}
    assert not leaked_ns, f"tests left network namespaces behind: {sorted(leaked_ns)}"
    assert not leaked_links, f"tests left host links behind: {sorted(leaked_links)}"


@pytest.fixture
def make_netns() -> Iterator[Callable[[], Netns]]:
    """Factory for fresh namespaces, all deleted at teardown."""
    yield from netns_factory(NETNS_PREFIX, _created_netns.add)


@pytest.fixture
def hostns(make_netns: Callable[[], Netns]) -> Netns:
    """A namespace standing in for the host."""
    return make_netns()


@pytest.fixture
def ctrns(make_netns: Callable[[], Netns]) -> Netns:
    """A namespace standing in for a container."""
    return make_netns()


@pytest.fixture
def ifname() -> Callable[[str], str]:
    """Factory for unique link names: ``ifname("br")`` -> "br1a2b3c4d"."""
    return unique


@pytest.fixture
def host_links() -> Iterator[Callable[[str], str]]:
    """Register a link created in the machine's real namespace; it is deleted at teardown."""
    names: list[str] = []

    def register(name: str) -> str:
        names.append(name)
        _created_host_links.add(name)
        return name

    yield register
    for name in names:
        run("ip", "link", "delete", "dev", name, check=False)
