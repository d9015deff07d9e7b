"""Network namespaces made for one test, always deleted afterwards.

``netns_factory(prefix)`` is the body of a ``make_netns`` fixture: it yields
``make()``, which creates a namespace named ``prefix`` + 8 hex digits with
``lo`` up, and deletes every namespace it made when the fixture ends, even
after a failure::

    @pytest.fixture
    def make_netns() -> Iterator[Callable[[], Netns]]:
        yield from netns_factory("pycni-n-")
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from tests.support.host import run

__all__ = ["Netns", "netns_factory", "ping", "unique"]

P = ParamSpec("P")
T = TypeVar("T")


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
        from pycni.net.netns import run_in_netns

        return run_in_netns(self.path, fn, *args, **kwargs)


def unique(prefix: str) -> str:
    """A unique name: ``prefix`` + 8 hex digits (keep prefix <= 7 chars for link names)."""
    return f"{prefix}{os.urandom(4).hex()}"


def netns_factory(prefix: str, record: Callable[[str], None] | None = None) -> Iterator[Callable[[], Netns]]:
    """Yield a factory of fresh namespaces (``record`` sees each name first); delete them all at the end."""
    made: list[Netns] = []

    def make() -> Netns:
        ns = Netns(unique(prefix))
        if record is not None:
            record(ns.name)
        run("ip", "netns", "add", ns.name)
        made.append(ns)
        # lo up, so that local traffic (and ping to self) works.
        ns.run("ip", "link", "set", "lo", "up")
        return ns

    try:
        yield make
    finally:
        for ns in made:
            run("ip", "netns", "delete", ns.name, check=False)


def ping(ns: Netns, target: str, count: int = 1) -> bool:
    """True if ``target`` answers from inside ``ns`` (skips, or fails in CI, without ping)."""
    if not shutil.which("ping"):
        import pytest

        if os.environ.get("PYCNI_REQUIRE_KERNEL_TESTS") == "1":
            pytest.fail("kernel test prerequisite missing: needs ping (iputils-ping)")
        pytest.skip("needs ping (iputils-ping)")
    return ns.run("ping", "-c", str(count), "-W", "2", target, check=False).returncode == 0
