"""The executor's systemd units (socket activation), rendered for a given ``pycni`` command.

packaging/systemd/ holds them rendered for ``/usr/bin/pycni`` (what a
distribution package would ship); ``pycni install --executor`` renders them
for the interpreter it runs under. A unit test keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Sequence

from pycni.executor.protocol import DEFAULT_SOCKET

SOCKET_UNIT = """\
[Unit]
Description=pycni executor socket (CNI plugin calls from /opt/cni/bin)

[Socket]
ListenStream={socket}
SocketMode=0600
SocketUser=root
SocketGroup=root
DirectoryMode=0755
# Stopped socket, no file: shims then run plugins in-process at once.
RemoveOnStop=yes

[Install]
WantedBy=sockets.target
"""

SERVICE_UNIT = """\
[Unit]
Description=pycni executor: runs CNI plugin calls in a warm process
Requires=pycni-executor.socket
After=pycni-executor.socket

[Service]
Type=simple
# Logs are JSON lines on stderr, i.e. in the journal.
ExecStart={command} executor
Restart=always
RestartSec=1
# SIGTERM lets running calls finish (up to 30 s).
TimeoutStopSec=40

[Install]
Also=pycni-executor.socket
"""

UNITS = ("pycni-executor.socket", "pycni-executor.service")


def render_unit(name: str, command: Sequence[str], socket: str | None = None) -> str:
    """The unit file ``name``: ExecStart runs ``command executor``; the socket unit listens on ``socket``."""
    if name == "pycni-executor.socket":
        return SOCKET_UNIT.format(socket=socket or DEFAULT_SOCKET)
    if name == "pycni-executor.service":
        return SERVICE_UNIT.format(command=" ".join(_quote(arg) for arg in command))
    raise KeyError(name)


def _quote(arg: str) -> str:
    if arg and not any(c.isspace() or c in "\"'\\;$%" for c in arg):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$").replace("%", "%%")
    return f'"{escaped}"'
