"""WireGuard keys: Curve25519 key pairs (RFC 7748), their encodings, and the node's private key file.

Contract:

- ``generate_private_key()`` returns 32 random bytes, clamped as RFC 7748
  says; ``public_key(private)`` is X25519(private, 9). Both are pure Python
  (no dependency; a key pair is made once per node and per rotation).
- Keys travel as base64 (``wg``'s and the lease's form, ``to_base64``) and
  as lowercase hex on wireguard-go's UAPI socket (``to_hex``).
- ``load_or_create_key(path)`` reads the private key file, or creates it
  once: mode 0600, written to a temporary file and renamed, so a crash never
  leaves half a key. A file that is not a 32-byte base64 key is an error,
  never silently replaced (its peers know its public key).
- ``replace_key(path)`` writes a fresh key the same way (``rotate-key``).
"""

from __future__ import annotations

import base64
import binascii
import os

from pycni.spec.errors import InvalidConfig

__all__ = [
    "KEY_SIZE",
    "from_base64",
    "generate_private_key",
    "load_or_create_key",
    "public_key",
    "replace_key",
    "to_base64",
    "to_hex",
]

KEY_SIZE = 32
_P = 2**255 - 19
_A24 = 121665


def _clamp(scalar: bytes) -> int:
    k = bytearray(scalar)
    k[0] &= 248
    k[31] &= 127
    k[31] |= 64
    return int.from_bytes(k, "little")


def _x25519(scalar: bytes, u_bytes: bytes) -> bytes:
    """The Montgomery ladder of RFC 7748 section 5 (not constant time: fine for keys made once)."""
    k = _clamp(scalar)
    u = int.from_bytes(u_bytes, "little") & ((1 << 255) - 1)
    x1, x2, z2, x3, z3 = u, 1, 0, u, 1
    swap = 0
    for t in reversed(range(255)):
        bit = (k >> t) & 1
        swap ^= bit
        if swap:
            x2, x3, z2, z3 = x3, x2, z3, z2
        swap = bit
        a, b = (x2 + z2) % _P, (x2 - z2) % _P
        aa, bb = a * a % _P, b * b % _P
        e = (aa - bb) % _P
        c, d = (x3 + z3) % _P, (x3 - z3) % _P
        da, cb = d * a % _P, c * b % _P
        x3 = (da + cb) ** 2 % _P
        z3 = x1 * (da - cb) ** 2 % _P
        x2 = aa * bb % _P
        z2 = e * (aa + _A24 * e) % _P
    if swap:
        x2, z2 = x3, z3
    return (x2 * pow(z2, _P - 2, _P) % _P).to_bytes(32, "little")


def generate_private_key() -> bytes:
    k = bytearray(os.urandom(KEY_SIZE))
    k[0] &= 248
    k[31] &= 127
    k[31] |= 64
    return bytes(k)


def public_key(private: bytes) -> bytes:
    return _x25519(private, (9).to_bytes(32, "little"))


def to_base64(key: bytes) -> str:
    return base64.b64encode(key).decode("ascii")


def to_hex(key: bytes) -> str:
    return key.hex()


def from_base64(text: str, what: str = "key") -> bytes:
    """Decode a base64 WireGuard key; ``InvalidConfig`` naming ``what`` if it is not 32 bytes of base64."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidConfig(f"{what}: not base64") from None
    if len(key) != KEY_SIZE:
        raise InvalidConfig(f"{what}: {len(key)} bytes, a WireGuard key has {KEY_SIZE}")
    return key


def _write_key(path: str, key: bytes) -> None:
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, (to_base64(key) + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def load_or_create_key(path: str) -> bytes:
    """The private key in ``path``, created (0600) if the file does not exist yet."""
    try:
        with open(path, encoding="ascii") as f:
            text = f.read()
    except FileNotFoundError:
        key = generate_private_key()
        _write_key(path, key)
        return key
    except UnicodeDecodeError:
        raise InvalidConfig(f"wireguard key file {path}: not base64") from None
    return from_base64(text, f"wireguard key file {path}")


def replace_key(path: str) -> bytes:
    """A new private key in ``path`` (the old one is gone once this returns)."""
    key = generate_private_key()
    _write_key(path, key)
    return key
