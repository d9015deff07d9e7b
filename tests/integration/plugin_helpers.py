"""Helpers for the firewall and tuning plugin tests.

``exec_plugin`` runs one installed plugin binary directly (CNI_COMMAND,
env, stdin), as a runtime would. The runtime library always runs a whole
chain; tests that must look at the pod between one plugin's DEL and the
next one's (tuning's restore happens before bridge deletes the link), or
that call GC on one plugin with a chosen valid set, exec the plugin
themselves.

``relocate`` moves a lab to random subnets that no interface on the host
uses: other test runs on the same machine (other checkouts, other
engineers) count their labs' subnets from the same start, and two bridges
with the same gateway address break both labs.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import subprocess
from dataclasses import dataclass
from typing import Any

from tests.integration.conftest import REPO_ROOT, CniLab, ip_json


def _used_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    used = []
    for link in ip_json("addr", "show"):
        for addr in link.get("addr_info", []):
            used.append(ipaddress.ip_interface(f"{addr['local']}/{addr['prefixlen']}").network)
    return used


def free_subnet4(rng: random.Random | None = None) -> ipaddress.IPv4Network:
    """A random 10.x.y.0/24 (x in 128..250) that overlaps nothing configured on the host."""
    rng = rng or random.Random()
    used = _used_networks()
    for _ in range(100):
        candidate = ipaddress.IPv4Network(f"10.{rng.randint(128, 250)}.{rng.randint(0, 255)}.0/24")
        if not any(candidate.overlaps(net) for net in used if net.version == 4):
            return candidate
    raise RuntimeError("no free 10.x.y.0/24 on this host")


def relocate(lab: CniLab) -> CniLab:
    """Give ``lab`` fresh random v4 and v6 subnets nobody on this host uses."""
    rng = random.Random()
    net4 = free_subnet4(rng)
    lab.subnet4 = str(net4)
    lab.gateway4 = str(net4.network_address + 1)
    lab.subnet6 = f"fd{rng.randint(0, 255):02x}:{rng.randint(0, 0xFFFF):x}:{rng.randint(0, 0xFFFF):x}::/64"
    return lab


@dataclass
class PluginRun:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout) if self.stdout.strip() else None

    @property
    def error_code(self) -> int | None:
        data = self.json
        return data.get("code") if self.code != 0 and isinstance(data, dict) else None


def exec_plugin(
    lab: CniLab,
    plugin_type: str,
    command: str,
    config: dict[str, Any],
    *,
    container_id: str = "",
    netns: str = "",
    ifname: str = "",
    cni_args: str = "",
) -> PluginRun:
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "PYTHONPATH": str(REPO_ROOT),
        "CNI_COMMAND": command,
        "CNI_PATH": os.pathsep.join(lab.cni_path),
    }
    for key, value in (
        ("CNI_CONTAINERID", container_id),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", ifname),
        ("CNI_ARGS", cni_args),
    ):
        if value:
            env[key] = value
    binary = lab.bin_dir / plugin_type
    proc = subprocess.run(
        [str(binary)], input=json.dumps(config).encode(), capture_output=True, env=env, timeout=60, check=False
    )
    return PluginRun(proc.returncode, proc.stdout.decode(), proc.stderr.decode())
