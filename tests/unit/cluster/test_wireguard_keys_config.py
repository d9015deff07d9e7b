"""The wireguard backend's keys, key file and config fields (no root)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pycni.cli.wireguard import backend_fields
from pycni.cluster.backends import wireguard_keys as keys
from pycni.cluster.backends.wireguard_config import WireguardOptions
from pycni.cluster.config import BackendConfig, ClusterConfig
from pycni.spec.errors import InvalidConfig

PSK = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="


def test_x25519_matches_rfc7748_vectors() -> None:
    alice = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    bob = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
    assert keys.public_key(alice).hex() == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    assert keys.public_key(bob).hex() == "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"


def test_a_generated_key_is_clamped_and_round_trips_base64() -> None:
    key = keys.generate_private_key()
    assert key[0] & 7 == 0 and key[31] & 0x80 == 0 and key[31] & 0x40
    assert keys.from_base64(keys.to_base64(key)) == key


def test_the_key_file_is_made_once_0600_and_reused(tmp_path: Path) -> None:
    path = str(tmp_path / "wg" / "private.key")
    first = keys.load_or_create_key(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert keys.load_or_create_key(path) == first
    rotated = keys.replace_key(path)
    assert rotated != first and keys.load_or_create_key(path) == rotated
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not [p for p in os.listdir(tmp_path / "wg") if p.endswith(".tmp")]


def test_a_damaged_key_file_is_an_error_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "private.key"
    path.write_text("not a key\n")
    with pytest.raises(InvalidConfig, match="not base64"):
        keys.load_or_create_key(str(path))
    path.write_text(keys.to_base64(b"\x01" * 16))
    with pytest.raises(InvalidConfig, match="16 bytes"):
        keys.load_or_create_key(str(path))
    assert path.read_text() == keys.to_base64(b"\x01" * 16)


def test_wireguard_config_round_trips_with_flannel_names() -> None:
    wire = {"Network": "10.244.0.0/16", "Backend": {"Type": "wireguard", "ListenPort": 51000, "PSK": PSK,
                                                     "PersistentKeepaliveInterval": 25, "MTU": 1400}}
    cfg = ClusterConfig.from_wire(wire)
    assert cfg.backend == BackendConfig(type="wireguard", mtu=1400,
                                        wireguard=WireguardOptions(listen_port=51000, psk=PSK, keepalive=25))
    assert cfg.to_wire()["Backend"] == wire["Backend"]
    assert ClusterConfig.from_wire(cfg.to_wire()) == cfg
    assert "wireguard (port 51000, PSK, keepalive 25s)" in cfg.describe()


def test_wireguard_defaults() -> None:
    cfg = ClusterConfig.from_wire({"Network": "10.244.0.0/16", "Backend": {"Type": "wireguard"}})
    assert cfg.backend.wireguard == WireguardOptions(listen_port=51820, psk=None, keepalive=0)
    assert cfg.to_wire()["Backend"] == {"Type": "wireguard", "ListenPort": 51820}


@pytest.mark.parametrize(("backend", "message"), [
    ({"Type": "wireguard", "ListenPort": 0}, r"^Backend.ListenPort: 0 is out of range \(1-65535\)$"),
    ({"Type": "wireguard", "PSK": "short"}, r"^Backend.PSK: not base64$"),
    ({"Type": "wireguard", "PSK": "AAAA"}, r"^Backend.PSK: 3 bytes, a WireGuard key has 32$"),
    ({"Type": "wireguard", "PersistentKeepaliveInterval": -1}, r"^Backend.PersistentKeepaliveInterval: -1 is out"),
    ({"Type": "wireguard", "VNI": 1}, r"^Backend.VNI: only applies to the vxlan backend$"),
    ({"Type": "vxlan", "ListenPort": 1}, r"^Backend.ListenPort: unknown field"),
])
def test_wireguard_config_errors_name_the_field(backend: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidConfig, match=message):
        ClusterConfig.from_wire({"Network": "10.244.0.0/16", "Backend": backend})


def test_init_flags_become_backend_fields() -> None:
    import argparse

    args = argparse.Namespace(backend="wireguard", listen_port=51000, psk=PSK, persistent_keepalive=None)
    assert backend_fields(args) == {"ListenPort": 51000, "PSK": PSK}
    with pytest.raises(InvalidConfig, match=r"^Backend.ListenPort: only applies to the wireguard backend$"):
        backend_fields(argparse.Namespace(backend="vxlan", listen_port=1, psk=None, persistent_keepalive=None))


def test_cluster_init_flags_make_the_wireguard_config() -> None:
    from pycni.cli.cluster import config_from_args
    from pycni.cli.main import build_parser

    args = build_parser().parse_args(["cluster", "init", "--network", "10.50.0.0/16", "--backend", "wireguard",
                                      "--listen-port", "51000", "--psk", PSK, "--persistent-keepalive", "25",
                                      "--mtu", "1400"])
    assert config_from_args(args).to_wire()["Backend"] == {
        "Type": "wireguard", "ListenPort": 51000, "PSK": PSK, "PersistentKeepaliveInterval": 25, "MTU": 1400}
    args = build_parser().parse_args(["node", "rotate-key", "n2", "--timeout", "5"])
    assert (args.node_command, args.name, args.timeout) == ("rotate-key", "n2", 5.0)
