"""One way to drive the node's WireGuard device, whichever implementation runs it.

``Control`` is the seam: ``ensure()`` makes the device exist (True when it
had to be made, so it must be configured from scratch), ``get()`` reads its
state, ``set(lines)`` applies UAPI ``set`` lines, ``close()`` removes it.

- ``GoControl``: wireguard-go, supervised (``wireguard_supervisor``), spoken
  to over its UAPI socket.
- ``KernelControl``: the kernel's WireGuard, made with ``ip link add ... type
  wireguard`` and driven by ``wg`` (wireguard-tools): ``wg show IF dump`` is
  read with ``parse_dump`` and the UAPI lines become ``wg set`` arguments
  (``wg_set_args``; keys go through 0600 files, never the command line).

``open_control`` picks the kernel's when the kernel can make the device.
"""

from __future__ import annotations

import base64
import contextlib
import os
import tempfile
from collections.abc import Callable, Sequence
from typing import Protocol

from pycni.cluster.backends.wireguard_supervisor import WireguardGo
from pycni.net import wireguard_kernel
from pycni.net.errors import NetError
from pycni.net.wireguard_uapi import DeviceState, PeerState, get_device, set_device

__all__ = ["Control", "GoControl", "KernelControl", "open_control", "parse_dump", "wg_set_args"]


class Control(Protocol):
    def ensure(self) -> bool: ...

    def get(self) -> DeviceState: ...

    def set(self, lines: Sequence[tuple[str, str]]) -> None: ...

    def describe(self) -> str: ...

    def close(self) -> None: ...


class GoControl:
    def __init__(self, device: str, state_dir: str) -> None:
        self.supervisor = WireguardGo(device, state_dir)
        self.path = ""

    def ensure(self) -> bool:
        self.path, started = self.supervisor.ensure()
        return started

    def get(self) -> DeviceState:
        return get_device(self.path)

    def set(self, lines: Sequence[tuple[str, str]]) -> None:
        set_device(self.path, lines)

    def describe(self) -> str:
        return f"wireguard-go (pid {self.supervisor.recorded_pid()})"

    def close(self) -> None:
        self.supervisor.stop()


def _hex(b64: str) -> str | None:
    return None if b64 in ("(none)", "") else base64.b64decode(b64).hex()


def parse_dump(text: str) -> DeviceState:
    """``wg show IF dump``: the device line (private, public, port, fwmark), then one line per peer
    (public, psk, endpoint, allowed ips, latest handshake, rx, tx, keepalive), tab-separated."""
    rows = [line.split("\t") for line in text.splitlines() if line.strip()]
    if not rows:
        raise NetError("wg show dump: empty output")
    head = rows[0]
    peers: dict[str, PeerState] = {}
    for row in rows[1:]:
        key = _hex(row[0])
        assert key is not None
        peers[key] = PeerState(
            public_key=key, preshared_key=_hex(row[1]), endpoint=None if row[2] == "(none)" else row[2],
            allowed_ips=frozenset() if row[3] == "(none)" else frozenset(row[3].split(",")),
            last_handshake=float(row[4]), rx_bytes=int(row[5]), tx_bytes=int(row[6]),
            keepalive=0 if row[7] == "off" else int(row[7]),
        )
    return DeviceState(private_key=_hex(head[0]), listen_port=int(head[2]),
                       fwmark=0 if head[3] == "off" else int(head[3], 0), peers=peers)


def wg_set_args(lines: Sequence[tuple[str, str]], secret: Callable[[str], str]) -> list[str]:
    """UAPI set lines -> ``wg set IF`` arguments; ``secret(hex)`` returns the path of a file holding that key."""
    args: list[str] = []
    allowed: list[str] | None = None

    def flush() -> None:
        nonlocal allowed
        if allowed is not None:
            args.extend(["allowed-ips", ",".join(allowed)])
            allowed = None

    for key, value in lines:
        if key == "private_key":
            args += ["private-key", secret(value)]
        elif key == "listen_port":
            args += ["listen-port", value]
        elif key == "public_key":
            flush()
            args += ["peer", base64.b64encode(bytes.fromhex(value)).decode()]
        elif key == "remove":
            args.append("remove")
        elif key == "preshared_key":
            args += ["preshared-key", secret(value) if value.strip("0") else "/dev/null"]
        elif key == "endpoint":
            args += ["endpoint", value]
        elif key == "persistent_keepalive_interval":
            args += ["persistent-keepalive", value if value != "0" else "off"]
        elif key == "replace_allowed_ips":
            allowed = []
        elif key == "allowed_ip":
            allowed = [*(allowed or []), value]
        else:
            raise ValueError(f"wg set: no equivalent for uapi key {key!r}")
    flush()
    return args


class KernelControl:
    def __init__(self, device: str, state_dir: str) -> None:
        self.device = device
        self.state_dir = state_dir

    def ensure(self) -> bool:
        from pycni.net.links import link_exists

        if link_exists(self.device):
            return False
        wireguard_kernel.add_wireguard_link(self.device)
        return True

    def get(self) -> DeviceState:
        return parse_dump(wireguard_kernel.wg_dump(self.device))

    def set(self, lines: Sequence[tuple[str, str]]) -> None:
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.state_dir) as tmp:
            made: dict[str, str] = {}

            def secret(hex_key: str) -> str:
                if hex_key not in made:
                    path = os.path.join(tmp, f"k{len(made)}")
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(fd, "w") as f:
                        f.write(base64.b64encode(bytes.fromhex(hex_key)).decode() + "\n")
                    made[hex_key] = path
                return made[hex_key]

            wireguard_kernel.wg_set(self.device, wg_set_args(lines, secret))

    def describe(self) -> str:
        return "kernel WireGuard device"

    def close(self) -> None:
        from pycni.net.links import delete_link

        with contextlib.suppress(NetError):
            delete_link(self.device, missing_ok=True)


def open_control(device: str, state_dir: str) -> Control:
    from pycni.net.wireguard_go import kernel_has_wireguard

    if kernel_has_wireguard():
        return KernelControl(device, state_dir)
    return GoControl(device, state_dir)
