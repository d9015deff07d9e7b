"""wireguard-go driven by pycni.net (root, a fresh namespace each): started in a mount namespace of its own,
configured over its UAPI socket, and the ``wg`` path the kernel's WireGuard uses checked against it.

This kernel has no WireGuard module, so ``KernelControl`` cannot run here; but ``wg`` speaks to
wireguard-go's socket too (entered with ``nsenter -m``), so the UAPI lines a converge sends, translated
into ``wg set`` arguments, must leave the device exactly as the same lines sent over UAPI do, and
``wg show dump`` must parse to the same state.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pycni.cluster.backends.wireguard_control import parse_dump, wg_set_args
from pycni.cluster.backends.wireguard_keys import generate_private_key, public_key, to_base64, to_hex
from pycni.net import wireguard_go
from pycni.net.wireguard_uapi import get_device, set_device
from tests.support.netns import Netns

IFACE = "pycni-wg"


@pytest.fixture
def wg_go(make_netns: Callable[[], Netns], tmp_path: Path) -> Iterator[tuple[Netns, int]]:
    for tool in ("wireguard-go", "wg", "nsenter"):
        if not shutil.which(tool):
            if os.environ.get("PYCNI_REQUIRE_KERNEL_TESTS") == "1":
                pytest.fail(f"needs {tool}")
            pytest.skip(f"needs {tool}")
    ns = make_netns()
    pid = ns.call(wireguard_go.start_wireguard_go, IFACE, str(tmp_path / "wg.log"))
    try:
        wireguard_go.wait_for_socket(pid, IFACE)
        yield ns, pid
    finally:
        wireguard_go.stop_wireguard_go(pid, IFACE)


def lines_for(private: bytes, peers: list[bytes], psk: bytes) -> list[tuple[str, str]]:
    out = [("private_key", to_hex(private)), ("listen_port", "51999")]
    for i, key in enumerate(peers):
        out += [("public_key", to_hex(public_key(key))), ("preshared_key", psk.hex() if i else "0" * 64),
                ("endpoint", f"192.0.2.{i + 2}:51820"), ("persistent_keepalive_interval", str(25 * i)),
                ("replace_allowed_ips", "true"), ("allowed_ip", f"10.77.{i}.0/24"),
                ("allowed_ip", f"192.0.2.{i + 2}/32")]
    return out


def test_each_wireguard_go_has_a_private_socket_and_its_device_in_its_netns(
        wg_go: tuple[Netns, int], make_netns: Callable[[], Netns], tmp_path: Path) -> None:
    ns, pid = wg_go
    assert "pycni-wg" in ns.run("ip", "-o", "link", "show").stdout
    assert not os.path.exists(f"/run/wireguard/{IFACE}.sock")  # not in the host's directory
    other = make_netns()  # a second one with the same device name: no "unix socket in use"
    pid2 = other.call(wireguard_go.start_wireguard_go, IFACE, str(tmp_path / "wg2.log"))
    try:
        wireguard_go.wait_for_socket(pid2, IFACE)
        assert wireguard_go.is_wireguard_go(pid, IFACE) and wireguard_go.is_wireguard_go(pid2, IFACE)
    finally:
        wireguard_go.stop_wireguard_go(pid2, IFACE)
    assert not wireguard_go.is_wireguard_go(pid2, IFACE)


def test_wg_set_arguments_leave_the_device_as_uapi_lines_do(wg_go: tuple[Netns, int], tmp_path: Path) -> None:
    _, pid = wg_go
    sock = wireguard_go.socket_path(pid, IFACE)
    peers = [generate_private_key() for _ in range(2)]
    lines = lines_for(generate_private_key(), peers, bytes(range(32)))
    set_device(sock, lines)
    by_uapi = get_device(sock)
    set_device(sock, [("private_key", "0" * 64), ("listen_port", "0"), ("replace_peers", "true")])
    assert get_device(sock).peers == {}

    def secret(hex_key: str) -> str:
        path = tmp_path / f"k-{hex_key[:8]}"
        path.write_text(to_base64(bytes.fromhex(hex_key)) + "\n")
        path.chmod(0o600)
        return str(path)

    subprocess.run(["nsenter", "-t", str(pid), "-m", "wg", "set", IFACE, *wg_set_args(lines, secret)], check=True,
                   capture_output=True, text=True)
    assert get_device(sock) == by_uapi
    dump = subprocess.run(["nsenter", "-t", str(pid), "-m", "wg", "show", IFACE, "dump"], check=True,
                          capture_output=True, text=True).stdout
    assert parse_dump(dump) == by_uapi
    removal = [("public_key", to_hex(public_key(peers[0]))), ("remove", "true")]
    subprocess.run(["nsenter", "-t", str(pid), "-m", "wg", "set", IFACE, *wg_set_args(removal, secret)], check=True)
    assert set(get_device(sock).peers) == {to_hex(public_key(peers[1]))}
