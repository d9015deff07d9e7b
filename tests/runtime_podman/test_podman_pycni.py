"""podman (a real runtime, CNI backend) running pycni's plugins.

pycni's shims are the only plugins podman can find, so every plugin of the
chain podman writes (bridge + host-local, portmap, firewall, tuning) is
pycni's; a second test mixes them with Debian's Go plugins.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.host import link_exists, links_with_master
from tests.support.podman import Podman

pytestmark = [pytest.mark.interop, pytest.mark.root]

PYCNI_TYPES = ("bridge", "host-local", "loopback", "portmap", "firewall", "tuning")


@pytest.fixture(scope="module")
def pycni_bin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from pycni.executor.install import install_plugins

    bin_dir = tmp_path_factory.mktemp("pycni-bin")
    install_plugins(bin_dir, PYCNI_TYPES)
    yield bin_dir


@pytest.fixture(scope="module")
def podman_plugin_dirs(pycni_bin: Path) -> list[str]:
    return [str(pycni_bin)]


def test_podman_containers_on_pycni_bridge_and_host_local(podman: Podman, pycni_bin: Path) -> None:
    net = podman.network_create()
    assert [p["type"] for p in net.conflist["plugins"]] == ["bridge", "portmap", "firewall", "tuning"]

    podman.start("a", net.name)
    podman.start("b", net.name, "-p", "18080:8080")
    ip_a, ip_b = podman.ip_of("a"), podman.ip_of("b")
    subnet = ipaddress.ip_network(net.subnet)
    assert ipaddress.ip_address(ip_a) in subnet and ipaddress.ip_address(ip_b) in subnet
    assert net.reserved_ips() == sorted([ip_a, ip_b])

    for src, dst in (("a", ip_b), ("b", ip_a), ("a", net.gateway)):
        ping = podman.exec(src, "ping", "-c1", "-W2", dst)
        assert ping.returncode == 0, ping.stdout + ping.stderr
    veths = links_with_master(net.bridge)
    assert len(veths) == 2
    # portmap: a server in b answers on the host port, from a (hairpin through the host) and from the host
    podman.exec("b", "sh", "-c", "echo hello-from-b > /tmp/index.html; busybox httpd -p 8080 -h /tmp", check=True)
    for address, port in ((ip_b, 8080), (net.gateway, 18080)):  # direct, then hairpin through the host port
        assert http_get(podman, "a", address, port) == "hello-from-b", (address, port)

    podman.rm("a", "b")
    assert net.reserved_ips() == []
    assert [v for v in veths if link_exists(v)] == []
    podman.network_remove(net.name)


def http_get(podman: Podman, container: str, address: str, port: int) -> str:
    """The body of GET /index.html, fetched with busybox nc (busybox-static's wget crashes in this image)."""
    request = "printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 3 " + f"{address} {port}"
    out = podman.exec(container, "sh", "-c", request).stdout
    return out.replace("\r\n", "\n").split("\n\n", 1)[-1].strip()  # headers end at the first blank line
