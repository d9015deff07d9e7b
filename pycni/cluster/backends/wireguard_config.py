"""The wireguard part of the cluster config (pure): Flannel's field names.

Wire (inside ``Backend``)::

    {"Type": "wireguard", "ListenPort": 51820, "PSK": "<base64>",
     "PersistentKeepaliveInterval": 0, "MTU": 1420}

``ListenPort`` is the UDP port every node listens on (51820 by default);
``PSK`` an optional cluster-wide pre-shared key (base64, 32 bytes, e.g. from
``wg genpsk``) mixed into every handshake; ``PersistentKeepaliveInterval``
seconds between keepalives, 0 (off) by default, 25 behind NAT; ``MTU`` stays
in ``BackendConfig`` (the pod MTU, shared by every backend). Errors are
``InvalidConfig`` naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pycni.cluster.backends.wireguard_keys import from_base64
from pycni.spec.errors import InvalidConfig

__all__ = ["DEFAULT_LISTEN_PORT", "FIELDS", "WireguardOptions"]

DEFAULT_LISTEN_PORT = 51820
FIELDS = ("ListenPort", "PSK", "PersistentKeepaliveInterval")


def _int(name: str, value: Any, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidConfig(f"Backend.{name}: {value!r} is not an integer")
    if not low <= value <= high:
        raise InvalidConfig(f"Backend.{name}: {value} is out of range ({low}-{high})")
    return value


@dataclass(frozen=True)
class WireguardOptions:
    listen_port: int = DEFAULT_LISTEN_PORT
    psk: str | None = None  # base64
    keepalive: int = 0

    def __post_init__(self) -> None:
        _int("ListenPort", self.listen_port, 1, 65535)
        _int("PersistentKeepaliveInterval", self.keepalive, 0, 65535)
        if self.psk is not None:
            if not isinstance(self.psk, str):
                raise InvalidConfig("Backend.PSK: must be a base64 string (wg genpsk)")
            from_base64(self.psk, "Backend.PSK")

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> WireguardOptions:
        kw: dict[str, Any] = {}
        for name, attr in (("ListenPort", "listen_port"), ("PSK", "psk"),
                           ("PersistentKeepaliveInterval", "keepalive")):
            if data.get(name) is not None:
                kw[attr] = data[name]
        return cls(**kw)

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ListenPort": self.listen_port}
        if self.psk is not None:
            out["PSK"] = self.psk
        if self.keepalive:
            out["PersistentKeepaliveInterval"] = self.keepalive
        return out

    def describe(self) -> str:
        text = f"port {self.listen_port}"
        if self.psk is not None:
            text += ", PSK"
        if self.keepalive:
            text += f", keepalive {self.keepalive}s"
        return text
