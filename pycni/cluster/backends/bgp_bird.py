"""Run and supervise the node's bird2: its files, start, restart, ``configure``, withdraw and stop.

Contract:

- Everything of one bird lives in one directory, ``<run-dir>/bird``:
  ``bird.conf``, the control socket ``bird.ctl``, ``bird.pid`` and
  ``bird.log``, so several lab nodes on one machine each have their own
  (the control socket is a path, shared by every netns).
- ``apply(config)`` checks the text with ``bird -p`` before it replaces
  bird.conf (a bad config never reaches a running bird), then starts bird
  when it is not running, or reconfigures it (``configure``) when the text
  changed. It returns what it did, for the agent's log.
- bird daemonizes and outlives the agent, as Calico's bird outlives felix:
  an agent restart changes nothing on the wire. The agent finds it again
  by the pid file (and the config path in its command line).
- A bird found dead (a pid file left behind) is started again with ``-R``:
  graceful restart recovery, so it waits for its peers before it touches
  the kernel's routes, which ``persist`` kept in place; the peers keep the
  node's routes meanwhile (graceful restart helpers). Pods never lose
  their routes.
- ``leave()``: disable the ``pod_subnet`` protocol (every peer withdraws
  the node's subnet at once, rather than keeping it for the 120 s of
  graceful restart), give the withdrawal a moment, then shut bird down.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass

from pycni.cluster.backends.bgp_control import BirdError, query

__all__ = ["BirdError", "BirdPaths", "BirdSupervisor"]


@dataclass(frozen=True)
class BirdPaths:
    dir: str

    @classmethod
    def under(cls, run_dir: str) -> BirdPaths:
        return cls(os.path.join(run_dir, "bird"))

    @property
    def conf(self) -> str:
        return os.path.join(self.dir, "bird.conf")

    @property
    def socket(self) -> str:
        return os.path.join(self.dir, "bird.ctl")

    @property
    def pid(self) -> str:
        return os.path.join(self.dir, "bird.pid")

    @property
    def log(self) -> str:
        return os.path.join(self.dir, "bird.log")


def _pid_of(paths: BirdPaths) -> int | None:
    """The pid of the live bird that runs ``paths.conf``, from the pid file."""
    try:
        with open(paths.pid, encoding="ascii") as f:
            pid = int(f.read().strip() or 0)
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().split(b"\0")
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            zombie = f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, ValueError, IndexError):
        return None
    return pid if paths.conf.encode() in cmdline and not zombie else None


class BirdSupervisor:
    def __init__(self, paths: BirdPaths, *, bird: str = "bird", start_timeout: float = 20.0,
                 prefix: Sequence[str] = ()) -> None:
        self.paths = paths
        self.bird = bird
        self.start_timeout = start_timeout
        self.prefix = list(prefix)  # e.g. ip netns exec NS: the lab starts its ToR's bird from the host
        self._synced = False  # this supervisor has seen bird take the current bird.conf

    def pid(self) -> int | None:
        return _pid_of(self.paths)

    def running(self) -> bool:
        return self.pid() is not None

    def apply(self, config: str) -> list[str]:
        """Make bird run ``config``: check it, write it, then start or reconfigure bird as needed."""
        os.makedirs(self.paths.dir, mode=0o755, exist_ok=True)
        changed = self._write_checked(config)
        if not self.running():
            started = self.start()
            self._synced = True
            return [started]
        if changed or not self._synced:
            # Also once after an agent restart: the running bird may predate the file (a crash in between).
            self.configure()
            self._synced = True
            if changed:
                return [f"bird reconfigured ({self.paths.conf})"]
        return []

    def _write_checked(self, config: str) -> bool:
        try:
            with open(self.paths.conf, encoding="utf-8") as f:
                if f.read() == config:
                    return False
        except FileNotFoundError:
            pass
        candidate = self.paths.conf + ".new"
        with open(candidate, "w", encoding="utf-8") as f:
            f.write(config)
        try:
            check = subprocess.run([self.bird, "-p", "-c", candidate], capture_output=True, text=True, timeout=30,
                                   check=False)
        except FileNotFoundError:
            missing = f"'{self.bird}' not found; Debian: apt install bird2"
            raise BirdError(f"the bgp backend needs bird2 ({missing})") from None
        if check.returncode != 0:
            raise BirdError(f"bird refused the rendered config {candidate}: {(check.stderr or check.stdout).strip()}")
        os.replace(candidate, self.paths.conf)
        return True

    def start(self) -> str:
        """Start bird (it daemonizes); ``-R`` when a previous bird died, so it recovers gracefully."""
        recovering = os.path.exists(self.paths.pid)
        cmd = [*self.prefix, self.bird, "-c", self.paths.conf, "-s", self.paths.socket, "-P", self.paths.pid]
        if recovering:
            cmd.append("-R")
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, timeout=30, check=False)
        if proc.returncode != 0:
            raise BirdError(f"failed to start bird ({' '.join(cmd)}): {proc.stderr.strip()}")
        deadline = time.monotonic() + self.start_timeout
        while True:
            pid = self.pid()
            if pid is not None:
                with contextlib.suppress(BirdError):
                    query(self.paths.socket, "show status", timeout=2)
                    break
            if time.monotonic() > deadline:
                raise BirdError(f"bird did not answer on {self.paths.socket} within {self.start_timeout:.0f}s; "
                                f"see {self.paths.log}")
            time.sleep(0.05)
        how = "restarted with graceful restart recovery" if recovering else "started"
        return f"bird {how} (pid {pid}, socket {self.paths.socket})"

    def configure(self) -> None:
        self._synced = False  # until bird confirms: a refused configure is retried at the next apply
        reply = query(self.paths.socket, "configure")
        if not any(code in (3, 4, 5, 17) for code, _ in reply):  # reconfigured, in progress, queued (bird 2.0)
            raise BirdError(f"bird did not take {self.paths.conf}: {reply}")

    def withdraw(self) -> None:
        """Stop announcing the node's subnet (peers drop it now)."""
        query(self.paths.socket, "disable pod_subnet")

    def stop(self, timeout: float = 10.0) -> None:
        """Shut bird down (``down``: it closes its sessions with a notification), SIGKILL as a last resort."""
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(BirdError):
            query(self.paths.socket, "down", timeout=2)
        deadline = time.monotonic() + timeout
        while self.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.pid() is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.paths.pid)  # a clean stop: the next start is not a recovery

    def leave(self, settle: float = 1.0) -> None:
        """Withdraw the node's subnet, let the withdrawal reach the peers, then stop bird."""
        if self.pid() is None:
            return
        with contextlib.suppress(BirdError):
            self.withdraw()
            time.sleep(settle)
        self.stop()
