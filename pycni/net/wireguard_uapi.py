"""WireGuard's cross-platform UAPI (what wireguard-go serves on its unix socket), and a client for it.

Protocol (www.wireguard.com/xplatform): a request is ``get=1\\n\\n`` or
``set=1\\n`` + ``key=value`` lines + a blank line; the answer is
``key=value`` lines (for get) ending with ``errno=N`` and a blank line.
Keys are lowercase hex. In a get, each ``public_key=`` line opens a peer and
the lines after it describe that peer.

The pure half (``parse_get``, ``render_set``) is tested against recorded
output; ``get_device`` / ``set_device`` talk to a socket path. Failures are
``NetError`` naming the socket: a missing socket or a dead wireguard-go is
"connection refused" or "no such file", an ``errno=`` other than 0 is the
daemon refusing the request.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

from pycni.net.errors import NetError

__all__ = ["DeviceState", "PeerState", "get_device", "parse_get", "render_set", "set_device"]

_ZERO_KEY = "0" * 64


@dataclass(frozen=True)
class PeerState:
    public_key: str  # hex
    endpoint: str | None = None  # "ip:port"
    allowed_ips: frozenset[str] = frozenset()  # CIDRs as the daemon prints them
    keepalive: int = 0
    preshared_key: str | None = None  # hex; None when unset (all zeros on the wire)
    last_handshake: float = 0.0  # seconds since the epoch, 0 = never
    rx_bytes: int = 0
    tx_bytes: int = 0


@dataclass(frozen=True)
class DeviceState:
    private_key: str | None = None  # hex
    listen_port: int = 0
    fwmark: int = 0
    peers: dict[str, PeerState] = field(default_factory=dict)  # by public key (hex)


def parse_get(text: str) -> DeviceState:
    """The state in the answer to ``get=1`` (raises ``NetError`` on a non-zero ``errno``)."""
    device: dict[str, object] = {}
    peers: dict[str, dict[str, object]] = {}
    peer: dict[str, object] | None = None
    for line in text.splitlines():
        if not line:
            continue
        key, _, value = line.partition("=")
        if key == "errno":
            if value != "0":
                raise NetError(f"wireguard uapi get failed: errno={value}", errno=int(value) if value.isdigit() else 0)
            continue
        if key == "public_key":
            peer = {"public_key": value, "allowed_ips": set(), "sec": 0, "nsec": 0}
            peers[value] = peer
        elif peer is None:
            device[key] = value
        elif key == "allowed_ip":
            allowed = peer["allowed_ips"]
            assert isinstance(allowed, set)
            allowed.add(value)
        elif key == "last_handshake_time_sec":
            peer["sec"] = int(value)
        elif key == "last_handshake_time_nsec":
            peer["nsec"] = int(value)
        else:
            peer[key] = value
    return DeviceState(
        private_key=_key(device.get("private_key")),
        listen_port=int(str(device.get("listen_port", 0))),
        fwmark=int(str(device.get("fwmark", 0))),
        peers={key: PeerState(
            public_key=key,
            endpoint=str(p["endpoint"]) if p.get("endpoint") else None,
            allowed_ips=frozenset(str(a) for a in p["allowed_ips"]),  # type: ignore[attr-defined]
            keepalive=int(str(p.get("persistent_keepalive_interval", 0))),
            preshared_key=_key(p.get("preshared_key")),
            last_handshake=int(str(p["sec"])) + int(str(p["nsec"])) / 1e9,
            rx_bytes=int(str(p.get("rx_bytes", 0))),
            tx_bytes=int(str(p.get("tx_bytes", 0))),
        ) for key, p in peers.items()},
    )


def _key(value: object) -> str | None:
    return None if value in (None, "", _ZERO_KEY) else str(value)


def render_set(lines: Sequence[tuple[str, str]]) -> str:
    """A ``set=1`` request of ``key=value`` lines, in order (order matters: peer lines follow their key)."""
    for key, value in lines:
        if "\n" in key or "\n" in value or "=" in key:
            raise ValueError(f"wireguard uapi: bad line {key!r}={value!r}")
    return "set=1\n" + "".join(f"{k}={v}\n" for k, v in lines) + "\n"


def _request(path: str, request: str, timeout: float) -> str:
    chunks: list[bytes] = []
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(request.encode())
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                if b"errno=" in chunk or b"errno=" in b"".join(chunks[-2:]):
                    data = b"".join(chunks)
                    if data.endswith(b"\n\n"):
                        break
    except OSError as exc:
        raise NetError(f"failed to talk to wireguard uapi socket '{path}': {exc.strerror or exc}",
                       errno=exc.errno or 0) from exc
    return b"".join(chunks).decode("utf-8", "replace")


def get_device(path: str, timeout: float = 5.0) -> DeviceState:
    return parse_get(_request(path, "get=1\n\n", timeout))


def set_device(path: str, lines: Sequence[tuple[str, str]], timeout: float = 5.0) -> None:
    answer = _request(path, render_set(lines), timeout)
    for line in answer.splitlines():
        if line.startswith("errno=") and line != "errno=0":
            raise NetError(f"wireguard uapi set on '{path}' refused: {line}", errno=int(line[6:] or 0))
