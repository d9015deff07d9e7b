"""Talk to bird's control socket (what ``birdc`` does), without birdc.

The protocol (bird's doc/prog and sysdep/unix/main.c, checked against bird
2.0.12 here): on connect bird greets with ``0001 BIRD <version> ready.``;
a command is one line; every reply line starts with a four-digit code,
followed by ``-`` when more lines come or a space on the last line, and a
line starting with a space continues the previous code. ``0000`` ends a
table; 8xxx are runtime errors, 9xxx parse errors.

``query(socket, command)`` returns the reply as (code, text) pairs, the
continuation lines carrying the code of the line they continue, and raises
``BirdError`` for 8xxx/9xxx replies and when bird does not answer.
"""

from __future__ import annotations

import socket

__all__ = ["BirdError", "Reply", "query", "split_reply"]

Reply = list[tuple[int, str]]


class BirdError(Exception):
    """bird refused a command or could not be reached; the message says which."""


def split_reply(raw: str) -> tuple[Reply, bool]:
    """Parse reply text into (code, text) lines; the flag tells whether the reply's last line is in ``raw``."""
    lines: Reply = []
    code = 0
    for line in raw.split("\n"):
        if len(line) >= 5 and line[:4].isdigit() and line[4] in "- ":
            code = int(line[:4])
            lines.append((code, line[5:]))
            if line[4] == " ":
                return lines, True
        elif line.startswith(" "):
            lines.append((code, line[1:]))
    return lines, False


def _read_reply(sock: socket.socket) -> Reply:
    buffer = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            raise BirdError("bird closed the control socket before it finished its reply")
        buffer += chunk
        if not buffer.endswith(b"\n"):
            continue
        lines, done = split_reply(buffer.decode("utf-8", "replace"))
        if done:
            return lines


def query(path: str, command: str, *, timeout: float = 10.0) -> Reply:
    """Send one command to the bird at control socket ``path``; its reply lines."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            _read_reply(sock)  # the 0001 greeting
            sock.sendall(command.encode() + b"\n")
            reply = _read_reply(sock)
    except OSError as exc:
        raise BirdError(f"failed to ask bird at '{path}' for '{command}': {exc}") from exc
    last = reply[-1][0] if reply else 0
    if last >= 8000:
        text = "; ".join(t.strip() for _, t in reply if t.strip())
        raise BirdError(f"bird at '{path}' refused '{command}': {text}")
    return reply
