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
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import pytest

from pycni.net.netns import run_in_netns

P = ParamSpec("P")
T = TypeVar("T")

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


def run(*cmd: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command, optionally inside a named netns (``ip netns exec``)."""
    full = ["ip", "netns", "exec", netns, *cmd] if netns else list(cmd)
    return subprocess.run(full, capture_output=True, text=True, check=check, timeout=30)


def _netns_names() -> set[str]:
    out = run("ip", "netns", "list").stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _host_link_exists(name: str) -> bool:
    return run("ip", "link", "show", "dev", name, check=False).returncode == 0


@pytest.fixture(scope="session", autouse=True)
def _no_leftovers() -> Iterator[None]:
    yield
    if _missing_prerequisite() is not None:
        return
    leaked_ns = _created_netns & _netns_names()
    leaked_links = {name for name in _created_host_links if _host_link_exists(name)}
    assert not leaked_ns, f"tests left network namespaces behind: {sorted(leaked_ns)}"
    assert not leaked_links, f"tests left host links behind: {sorted(leaked_links)}"


@dataclass(frozen=True)
class Netns:
    """A namespace created for one test."""

    name: str

    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(*cmd, netns=self.name, check=check)

    def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn`` inside this namespace (via the code under test's run_in_netns)."""
        return run_in_netns(self.path, fn, *args, **kwargs)


def unique(prefix: str) -> str:
    """A unique name: ``prefix`` + 8 hex digits (keep prefix <= 7 chars for link names)."""
    return f"{prefix}{os.urandom(4).hex()}"


@pytest.fixture
def make_netns() -> Iterator[Callable[[], Netns]]:
    """Factory for fresh namespaces, all deleted at teardown."""
    made: list[Netns] = []

    def make() -> Netns:
        ns = Netns(unique(NETNS_PREFIX))
        _created_netns.add(ns.name)
        run("ip", "netns", "add", ns.name)
        made.append(ns)
        # lo up, so that local traffic (and ping to self) works.
        ns.run("ip", "link", "set", "lo", "up")
        return ns

    yield make
    for ns in made:
        run("ip", "netns", "delete", ns.name, check=False)


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


def ping(ns: Netns, target: str, count: int = 1) -> bool:
    """True if ``target`` answers from inside ``ns``."""
    if not shutil.which("ping"):
        _skip_or_fail("needs ping (iputils-ping)")
    return ns.run("ping", "-c", str(count), "-W", "2", target, check=False).returncode == 0
