"""One lab node as a fault sees it: its directories, commands in its namespace, and a stash for what it moves.

Everything here works on the lab's own namespaces and directories; ``host``
runs a command in the host's namespaces (``ip netns add`` must not run
inside ``ip netns exec``'s private mount namespace).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network
from typing import Any

from pycni.cluster.lab import Lab, LabError
from pycni.cluster.lab_state import LabState

__all__ = ["Target", "Undo", "host", "remove_files", "stash_move", "stash_restore"]

Undo = dict[str, Any]  # what a heal needs, as JSON values (kept in the lab's state)


@dataclass(frozen=True)
class Target:
    """One node of a lab: where its files are, and commands in its namespace."""

    lab: Lab
    node: str
    fault: str

    @property
    def state(self) -> LabState:
        return self.lab.state

    @property
    def node_dir(self) -> str:
        return self.state.node_dir(self.node)

    def path(self, *parts: str) -> str:
        return os.path.join(self.node_dir, *parts)

    @property
    def bin_dir(self) -> str:
        return os.path.join(self.state.dir, "bin")

    @property
    def stash(self) -> str:
        """A directory of the lab's own where this fault keeps what it moved away."""
        return os.path.join(self.state.dir, "faults", self.node, self.fault)

    def run(self, *cmd: str) -> str:
        return self.lab.exec(self.node, list(cmd), check=True).stdout

    def sysctl(self, key: str, value: str | None = None) -> str:
        """The value of ``key`` in the node's namespace; with ``value``, set it first and return the old one."""
        old = self.run("sysctl", "-n", key).strip()
        if value is not None:
            self.run("sysctl", "-qw", f"{key}={value}")
        return old

    def link(self, name: str) -> dict[str, Any]:
        links: list[dict[str, Any]] = json.loads(self.run("ip", "-j", "link", "show", "dev", name))
        return links[0]

    def link_addresses(self, name: str) -> list[dict[str, Any]]:
        """The IPv4 addresses of a link (``ip -j addr`` entries: local, prefixlen, ...)."""
        links: list[dict[str, Any]] = json.loads(self.run("ip", "-j", "-4", "addr", "show", "dev", name) or "[]")
        return list(links[0].get("addr_info", [])) if links else []

    def vxlan_device(self) -> str:
        links: list[dict[str, Any]] = json.loads(self.run("ip", "-j", "link", "show", "type", "vxlan") or "[]")
        if not links:
            raise LabError(f"node {self.node} has no VXLAN device yet")
        return str(links[0]["ifname"])

    def subnet(self) -> IPv4Network:
        subnet = self.lab.node_subnet(self.node)
        if subnet is None:
            raise LabError(f"node {self.node} has no subnet yet (is its agent running?)")
        if not isinstance(subnet, IPv4Network):
            raise LabError(f"node {self.node} has the IPv6 subnet {subnet}: lab faults need an IPv4 lab")
        return subnet


def host(*cmd: str, check: bool = True) -> None:
    """A command in the host's namespaces (``ip netns add`` must not run in ``ip netns exec``'s mount namespace)."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    if check and proc.returncode != 0:
        raise LabError(f"'{' '.join(cmd)}' failed: {proc.stderr.strip()}")


def stash_move(t: Target, src_dir: str, names: Sequence[str]) -> Undo:
    os.makedirs(t.stash, exist_ok=True)
    for name in names:
        shutil.move(os.path.join(src_dir, name), os.path.join(t.stash, name))
    return {"dir": src_dir, "moved": list(names)}


def stash_restore(t: Target, undo: Undo) -> None:
    for name in undo.get("moved", []):
        if os.path.lexists(os.path.join(t.stash, name)):
            shutil.move(os.path.join(t.stash, name), os.path.join(undo["dir"], name))
    shutil.rmtree(t.stash, ignore_errors=True)


def remove_files(t: Target, undo: Undo) -> None:
    for path in undo.get("remove", []):
        if os.path.lexists(path):
            os.unlink(path)
