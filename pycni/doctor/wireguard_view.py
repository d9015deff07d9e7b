"""What doctor sees of the node's WireGuard device (pure data; ``collect_wireguard`` fills it).

Keys are base64 (as leases and ``wg`` show them); ``last_handshake`` is
seconds since the epoch, 0 for never.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["WgDeviceView", "WgPeerView"]


@dataclass(frozen=True)
class WgPeerView:
    public_key: str
    endpoint: str | None
    allowed_ips: tuple[str, ...]
    last_handshake: float
    rx_bytes: int
    tx_bytes: int


@dataclass(frozen=True)
class WgDeviceView:
    implementation: str  # "wireguard-go (pid N)" or "kernel"
    public_key: str | None  # of the device's private key; None when it has none
    peers: tuple[WgPeerView, ...]
    collected_at: float
