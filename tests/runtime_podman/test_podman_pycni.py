"""podman (a real runtime, CNI backend) running pycni's plugins.

pycni's shims are installed into a directory that comes first in podman's
plugin path, so its bridge and host-local serve podman's own conflist;
portmap, firewall and tuning (not pycni's yet) come from Debian's Go
plugins behind them: a mixed chain, as users will run it.
"""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runtime_podman.conftest import GO_PLUGIN_DIR, Podman, link_exists, links_with_master

pytestmark = [pytest.mark.interop, pytest.mark.root]

PYCNI_TYPES = ("bridge", "host-local", "loopback")


@pytest.fixture(scope="module")
def pycni_bin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from pycni.cli.install import cmd_install

    bin_dir = tmp_path_factory.mktemp("pycni-bin")
    cmd_install(argparse.Namespace(bin_dir=str(bin_dir), plugins=list(PYCNI_TYPES), force=False), {})
    yield bin_dir


@pytest.fixture(scope="module")
def go_meta_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Only the Go meta plugins, so bridge and host-local can only be pycni's."""
    bin_dir = tmp_path_factory.mktemp("go-meta-bin")
    for plugin_type in ("portmap", "firewall", "tuning"):
        (bin_dir / plugin_type).symlink_to(f"{GO_PLUGIN_DIR}/{plugin_type}")
    return bin_dir


@pytest.fixture(scope="module")
def podman_plugin_dirs(pycni_bin: Path, go_meta_bin: Path) -> list[str]:
    return [str(pycni_bin), str(go_meta_bin)]


def test_podman_containers_on_pycni_bridge_and_host_local(podman: Podman, pycni_bin: Path) -> None:
    net = podman.network_create()
    assert [p["type"] for p in net.conflist["plugins"]] == ["bridge", "portmap", "firewall", "tuning"]

    podman.start("a", net.name)
    podman.start("b", net.name)
    ip_a, ip_b = podman.ip_of("a"), podman.ip_of("b")
    subnet = ipaddress.ip_network(net.subnet)
    assert ipaddress.ip_address(ip_a) in subnet and ipaddress.ip_address(ip_b) in subnet
    assert net.reserved_ips() == sorted([ip_a, ip_b])

    for src, dst in (("a", ip_b), ("b", ip_a), ("a", net.gateway)):
        ping = podman.exec(src, "ping", "-c1", "-W2", dst)
        assert ping.returncode == 0, ping.stdout + ping.stderr
    veths = links_with_master(net.bridge)
    assert len(veths) == 2

    podman.rm("a", "b")
    assert net.reserved_ips() == []
    assert [v for v in veths if link_exists(v)] == []
    podman.network_remove(net.name)
