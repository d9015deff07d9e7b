"""The plugin's calls to the daemon: one JSON request and one JSON answer per unix-socket connection.

Contract:

- A request is ``{"method", "containerID", "netns", "ifName", "args",
  "config"}`` (``config`` the plugin's parsed stdin, ``args`` raw CNI_ARGS),
  one line of UTF-8 JSON. Methods: ``allocate``, ``release``, ``check``,
  ``status``.
- The answer is one line: ``{"result": {...}}`` (a CNI result in the
  current version, or ``{}``) or ``{"error": {"code", "msg", "details"}}``,
  the CniError the daemon raised.
- ``call`` raises the daemon's error as that CniError, and
  ``PluginNotAvailable`` (code 50) naming the socket when no daemon answers.
  A lease may take the daemon's whole DHCP timeout to acquire, so the wait
  for an answer is long (``ANSWER_TIMEOUT``).
"""

from __future__ import annotations

import json
import socket
from typing import Any

from pycni.spec.errors import CniError, PluginNotAvailable

__all__ = ["ANSWER_TIMEOUT", "MAX_MESSAGE", "call", "read_message", "write_message"]

ANSWER_TIMEOUT = 180.0
MAX_MESSAGE = 4 << 20


def write_message(sock: socket.socket, obj: Any) -> None:
    sock.sendall(json.dumps(obj, separators=(",", ":")).encode() + b"\n")


def read_message(sock: socket.socket) -> Any:
    """One JSON line; ValueError when the peer closed early or sent too much or not JSON."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            raise ValueError("connection closed before a whole message arrived")
        chunks.append(chunk)
        size += len(chunk)
        if chunk.endswith(b"\n"):
            return json.loads(b"".join(chunks))
        if size > MAX_MESSAGE:
            raise ValueError(f"message over {MAX_MESSAGE} bytes")


def call(socket_path: str, request: dict[str, Any], timeout: float = ANSWER_TIMEOUT) -> dict[str, Any]:
    """The daemon's result for ``request``; its error raised as the CniError it named."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(timeout)
        try:
            sock.connect(socket_path)
        except OSError as exc:
            raise PluginNotAvailable(
                f"failed to reach the DHCP daemon at '{socket_path}': {exc.strerror or exc}",
                "start it with 'dhcp daemon' (or set ipam.daemonSocketPath)",
            ) from exc
        try:
            write_message(sock, request)
            answer = read_message(sock)
        except (OSError, ValueError) as exc:
            raise CniError(f"failed to call the DHCP daemon at '{socket_path}': {exc}") from exc
    finally:
        sock.close()
    if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
        raise CniError.from_wire(answer["error"])
    if not isinstance(answer, dict) or not isinstance(answer.get("result"), dict):
        raise CniError(f"the DHCP daemon at '{socket_path}' answered something else than a result")
    result: dict[str, Any] = answer["result"]
    return result
