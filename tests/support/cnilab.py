"""``CniLab``: one isolated CNI world for a test (conf, cache, IPAM and bin dirs, unique bridge and subnets).

Configs, the result cache and IPAM data live under the lab's root (a test's
tmp_path), never in /etc/cni/net.d, /opt/cni/bin or /var/lib/cni. The
``lab`` fixtures (tests/integration, tests/executor) make one per test and
delete its bridge afterwards.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.subnets import free_subnet4

__all__ = ["GO_PLUGIN_DIR", "REPO_ROOT", "CniLab", "use_free_subnets"]

GO_PLUGIN_DIR = "/usr/lib/cni"
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class CniLab:
    """One isolated CNI world: conf dir, cache dir, IPAM dir, unique bridge and subnets."""

    root: Path
    bridge: str
    subnet4: str
    gateway4: str
    subnet6: str
    conf_dir: Path = field(init=False)
    cache_dir: Path = field(init=False)
    ipam_dir: Path = field(init=False)
    bin_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.conf_dir = self.root / "net.d"
        self.cache_dir = self.root / "cache"
        self.ipam_dir = self.root / "ipam"
        self.bin_dir = self.root / "bin"
        for d in (self.conf_dir, self.cache_dir, self.ipam_dir, self.bin_dir):
            d.mkdir(parents=True, exist_ok=True)

    @property
    def cni_path(self) -> list[str]:
        return [str(self.bin_dir), GO_PLUGIN_DIR]

    def bridge_plugin(self, *, ipv6: bool = False) -> dict[str, Any]:
        ranges = [[{"subnet": self.subnet4}]]
        routes = [{"dst": "0.0.0.0/0"}]
        if ipv6:
            ranges.append([{"subnet": self.subnet6}])
            routes.append({"dst": "::/0"})
        return {
            "type": "bridge",
            "bridge": self.bridge,
            "isGateway": True,
            "ipam": {"type": "host-local", "ranges": ranges, "routes": routes, "dataDir": str(self.ipam_dir)},
        }

    def write_conflist(self, name: str, plugins: list[dict[str, Any]], version: str = "1.0.0",
                       filename: str | None = None, **extra: Any) -> Path:
        doc = {"cniVersion": version, "name": name, **extra, "plugins": plugins}
        path = self.conf_dir / (filename or f"10-{name}.conflist")
        path.write_text(json.dumps(doc, indent=2))
        return path

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for running the `pycni` CLI against this lab."""
        env = dict(os.environ)
        env.update(
            NETCONFPATH=str(self.conf_dir),
            CNI_PATH=os.pathsep.join(self.cni_path),
            CNI_CACHE_DIR=str(self.cache_dir),
            PYTHONPATH=str(REPO_ROOT),
        )
        env.update(extra)
        return env

    def reserved_ips(self, network: str) -> list[str]:
        net_dir = self.ipam_dir / network
        if not net_dir.is_dir():
            return []
        return sorted(p.name for p in net_dir.iterdir() if p.name[0].isdigit() or ":" in p.name)

    def install_pycni(self, *plugin_types: str) -> None:
        """Install pycni's shims (all, or the named types) into bin_dir, ahead of the Go plugins on CNI_PATH."""
        from pycni.executor.install import install_plugins

        install_plugins(self.bin_dir, plugin_types, executor_socket=os.environ.get("PYCNI_EXECUTOR_SOCKET"))

    def install_python_plugin(self, plugin_type: str, script: Path) -> None:
        """Put a pycni.skel plugin script on CNI_PATH as an executable."""
        wrapper = self.bin_dir / plugin_type
        wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{REPO_ROOT}" exec "{sys.executable}" "{script}" "$@"\n')
        wrapper.chmod(0o755)


def use_free_subnets(lab: CniLab) -> CniLab:
    """Give ``lab`` a random free 10.x.y.0/24 and a random ULA /64 (RFC 4193)."""
    rng = random.Random(os.urandom(8))
    net4 = free_subnet4(rng)
    lab.subnet4, lab.gateway4 = str(net4), str(net4[1])
    lab.subnet6 = str(ipaddress.IPv6Network(((0xFD << 120) | (rng.getrandbits(40) << 80), 64)))
    return lab
