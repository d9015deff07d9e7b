"""WireGuard devices on this kernel: the kernel's own, or wireguard-go as a detached process.

Contract:

- ``kernel_has_wireguard()``: whether ``ip link add ... type wireguard``
  works in the calling netns (it makes and deletes a probe device).
- ``start_wireguard_go(iface, log_path)`` starts ``wireguard-go -f IFACE``
  in the calling process's netns, in a session of its own (it outlives its
  starter) and in a mount namespace of its own with a private tmpfs on
  ``/run/wireguard``: wireguard-go puts its control socket at the fixed path
  ``/var/run/wireguard/IFACE.sock``, which is one directory for every network
  namespace, so two nodes of a lab (or any other wireguard-go on the host)
  would fight over it. The socket is reached as ``socket_path(pid, iface)``
  (``/proc/PID/root/run/wireguard/IFACE.sock``: the process's own view of
  its mounts). Returns the pid, which stays wireguard-go's (each wrapper
  ``exec``s the next).
- ``is_wireguard_go(pid, iface)``: that pid is a live wireguard-go serving
  ``iface`` (not a zombie, not a reused pid); ``stop_wireguard_go(pid)``
  ends it (the tun device goes with it).
- ``nudge(address)`` sends one empty datagram: a handshake starts at once.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time

from pycni.net.errors import NetError

__all__ = [
    "WIREGUARD_GO",
    "is_wireguard_go",
    "kernel_has_wireguard",
    "nudge",
    "socket_path",
    "start_wireguard_go",
    "stop_wireguard_go",
    "wait_for_socket",
]

WIREGUARD_GO = "wireguard-go"
_PROBE = "pycniwgprobe"

# Children started by this process: polled so a dead one is reaped instead of lingering as a zombie.
_children: dict[int, subprocess.Popen[bytes]] = {}

# mkdir on the shared /run is harmless; the tmpfs is mounted only in the new mount namespace.
_WRAPPER = ('mkdir -p /run/wireguard && mount -t tmpfs -o mode=0700,size=1m pycni-wireguard /run/wireguard '
            '&& exec "$0" -f "$1"')


def kernel_has_wireguard() -> bool:
    proc = subprocess.run(["ip", "link", "add", _PROBE, "type", "wireguard"], capture_output=True, check=False)
    if proc.returncode != 0:
        return False
    subprocess.run(["ip", "link", "delete", _PROBE], capture_output=True, check=False)
    return True


def socket_path(pid: int, iface: str) -> str:
    return f"/proc/{pid}/root/run/wireguard/{iface}.sock"


def start_wireguard_go(iface: str, log_path: str, *, log_level: str = "error") -> int:
    binary = shutil.which(WIREGUARD_GO)
    if binary is None:
        raise NetError("failed to start wireguard-go: not installed (Debian: wireguard-go)")
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LOG_LEVEL": log_level}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", _WRAPPER, binary, iface],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env,
            close_fds=True,
        )
    _children[proc.pid] = proc
    return proc.pid


def _reap(pid: int) -> None:
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]


def is_wireguard_go(pid: int, iface: str) -> bool:
    _reap(pid)
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                return False
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except (OSError, IndexError):
        return False
    return os.path.basename(argv[0]) == WIREGUARD_GO.encode() and iface.encode() in argv[1:]


def wait_for_socket(pid: int, iface: str, timeout: float = 10.0) -> str:
    """The socket path once wireguard-go serves it; ``NetError`` if it died or took too long."""
    path = socket_path(pid, iface)
    deadline = time.monotonic() + timeout
    while True:
        if os.path.exists(path):
            return path
        _reap(pid)
        alive = pid in _children or os.path.exists(f"/proc/{pid}")
        if not alive or time.monotonic() > deadline:
            reason = "it exited" if not alive else f"no socket after {timeout:.0f}s"
            raise NetError(f"failed to start wireguard-go for '{iface}': {reason}")
        time.sleep(0.02)


def stop_wireguard_go(pid: int, iface: str, timeout: float = 5.0) -> None:
    if not is_wireguard_go(pid, iface):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and is_wireguard_go(pid, iface):
        time.sleep(0.05)
    if is_wireguard_go(pid, iface):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def nudge(address: str, port: int = 9) -> None:
    """Send one empty UDP datagram to ``address`` (the discard port): through a WireGuard device without a
    session, it makes the device start a handshake now instead of at the next packet or timer."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"", (address, port))
