"""Helpers for the firewall and tuning plugin tests.

``exec_plugin`` runs one installed plugin binary directly (CNI_COMMAND,
env, stdin), as a runtime would. The runtime library always runs a whole
chain; tests that must look at the pod between one plugin's DEL and the
next one's (tuning's restore happens before bridge deletes the link), or
that call GC on one plugin with a chosen valid set, exec the plugin
themselves.

``relocate`` gives a lab fresh random subnets (the lab fixture already
starts on free random ones; kept for tests that build several labs).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from typing import Any

from tests.support.cnilab import REPO_ROOT, CniLab, use_free_subnets


def relocate(lab: CniLab) -> CniLab:
    """Give ``lab`` fresh random v4 and v6 subnets nobody on this host uses."""
    return use_free_subnets(lab)


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
