"""Keep one wireguard-go running for the node's device, across agent restarts.

``WireguardGo(iface, state_dir).ensure()`` returns the UAPI socket of a
running wireguard-go serving ``iface`` and whether it had to start one:

- the pid recorded in ``<state_dir>/wireguard-go.pid`` is adopted when it is
  still a live wireguard-go for ``iface`` whose socket answers (a restarted
  agent finds the process it left: pod traffic never stopped);
- otherwise (never started, killed, crashed) a new one is started, detached
  (pycni.net.wireguard_go), and its pid recorded before anything else. The
  caller then configures it from scratch: the same private key from the key
  file, the planned peers and the routes the old device took with it.

The agent checks on every converge (each lease change and every resync), so
a killed wireguard-go is replaced within one resync interval; meanwhile the
cluster blackhole drops pod traffic to other nodes (fail closed).
"""

from __future__ import annotations

import contextlib
import logging
import os

from pycni.net import wireguard_go

__all__ = ["WireguardGo"]

log = logging.getLogger("pycni.agent")


class WireguardGo:
    def __init__(self, iface: str, state_dir: str) -> None:
        self.iface = iface
        self.state_dir = state_dir
        self.pid_file = os.path.join(state_dir, "wireguard-go.pid")
        self.log_file = os.path.join(state_dir, "wireguard-go.log")

    def recorded_pid(self) -> int | None:
        try:
            with open(self.pid_file, encoding="ascii") as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def running_pid(self) -> int | None:
        """The recorded pid if it is still our wireguard-go with its socket in place."""
        pid = self.recorded_pid()
        if pid is None or not wireguard_go.is_wireguard_go(pid, self.iface):
            return None
        if not os.path.exists(wireguard_go.socket_path(pid, self.iface)):
            return None
        return pid

    def ensure(self) -> tuple[str, bool]:
        pid = self.running_pid()
        if pid is not None:
            return wireguard_go.socket_path(pid, self.iface), False
        old = self.recorded_pid()
        if old is not None:
            wireguard_go.stop_wireguard_go(old, self.iface)  # alive without a socket: half dead
            log.warning("wireguard-go for %s (pid %d) is gone; starting a new one with the same key", self.iface, old)
        os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
        pid = wireguard_go.start_wireguard_go(self.iface, self.log_file)
        tmp = f"{self.pid_file}.tmp"
        with open(tmp, "w", encoding="ascii") as f:
            f.write(f"{pid}\n")
        os.replace(tmp, self.pid_file)
        path = wireguard_go.wait_for_socket(pid, self.iface)
        log.info("started wireguard-go for %s (pid %d)", self.iface, pid)
        return path, True

    def stop(self) -> None:
        pid = self.recorded_pid()
        if pid is not None:
            wireguard_go.stop_wireguard_go(pid, self.iface)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.pid_file)
