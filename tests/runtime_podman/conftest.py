"""A real container runtime as a fixture: Debian 12's podman with its CNI backend.

The environment itself, and what was learnt about podman 4.3 building it,
is ``tests.support.podman``; here are only its fixtures:

- ``podman_plugin_dirs`` (module): where podman finds CNI plugins, default
  ``[/usr/lib/cni]`` (Debian's Go plugins); override it in a test module;
- ``make_podman`` (module): ``make_podman(plugin_dirs, env=None)`` -> a
  set-up ``Podman``; every one is closed at teardown, which fails if
  anything but documented shared firewall chains is left behind;
- ``podman`` (module): one private podman using ``podman_plugin_dirs`` (or
  the dirs given by indirect parametrization).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import pytest

from tests.support.podman import GO_PLUGIN_DIR, Podman
from tests.support.podman_host import require_prerequisites


@pytest.fixture(scope="module")
def podman_plugin_dirs() -> list[str]:
    """Where podman finds CNI plugins. Override this fixture in a test module to test pycni."""
    return [GO_PLUGIN_DIR]


@pytest.fixture(scope="module")
def make_podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Podman]]:
    """Factory: ``make_podman(plugin_dirs, env=None)`` -> a set-up ``Podman``; all closed at teardown."""
    made: list[Podman] = []

    def make(plugin_dirs: Sequence[str], env: dict[str, str] | None = None) -> Podman:
        require_prerequisites()
        root = tmp_path_factory.mktemp("podman")
        pm = Podman(root, plugin_dirs, env)
        made.append(pm)
        pm.setup()
        return pm

    yield make
    problems = []
    for pm in reversed(made):
        problems += pm.close()
    # Shared firewall chains we could not remove are documented leftovers, not failures.
    failures = [p for p in problems if not p.startswith("left in place:")]
    assert not failures, "podman teardown left things behind:\n" + "\n".join(failures)


@pytest.fixture(scope="module")
def podman(request: pytest.FixtureRequest, make_podman: Callable[..., Podman],
           podman_plugin_dirs: list[str]) -> Podman:
    """A private podman using ``podman_plugin_dirs`` (or the dirs given by indirect parametrization)."""
    dirs = getattr(request, "param", None) or podman_plugin_dirs
    return make_podman(dirs)
