"""Running installed shims the way a runtime execs plugins, with or without an executor."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from typing import Any

from tests.support.cnilab import CniLab

NO_EXECUTOR = "/nonexistent/pycni-executor.sock"


def shim_env(lab: CniLab, command: str | None, *, socket: str, container_id: str = "", netns: str = "",
             ifname: str = "eth0", **extra: str) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "CNI_PATH": os.pathsep.join(lab.cni_path),
           "PYCNI_EXECUTOR_SOCKET": socket}
    if command is not None:
        env["CNI_COMMAND"] = command
    for key, value in (("CNI_CONTAINERID", container_id), ("CNI_NETNS", netns), ("CNI_IFNAME", ifname)):
        if value:
            env[key] = value
    env.update(extra)
    return env


def run_shim(lab: CniLab, plugin_type: str, env: dict[str, str], stdin: bytes | dict[str, Any],
             *, prefix: Sequence[str] = (), timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    data = stdin if isinstance(stdin, bytes) else json.dumps(stdin).encode()
    return subprocess.run([*prefix, str(lab.bin_dir / plugin_type)], input=data, env=env, capture_output=True,
                          timeout=timeout, check=False)


def bridge_config(lab: CniLab, version: str = "1.0.0", **extra: Any) -> dict[str, Any]:
    return {"cniVersion": version, "name": "exnet", **lab.bridge_plugin(), **extra}


SLOW_IPAM = """#!/bin/sh
# An IPAM plugin that takes {seconds} s to answer ADD with 10.x.y.$SLOW_IPAM_HOST in the lab's subnet.
cat >/dev/null
case "$CNI_COMMAND" in
ADD) sleep {seconds}
     printf '{{"cniVersion":"1.0.0","ips":[{{"address":"{prefix}.%s/24","gateway":"{prefix}.1"}}]}}' "$SLOW_IPAM_HOST";;
VERSION) printf '{{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}}';;
esac
"""


def install_slow_ipam(lab: CniLab, seconds: float) -> None:
    """``slow-ipam`` on the lab's CNI_PATH: ADD sleeps, then hands out 10.x.y.$SLOW_IPAM_HOST; DEL is instant."""
    prefix = lab.subnet4.rsplit(".", 1)[0]
    path = lab.bin_dir / "slow-ipam"
    path.write_text(SLOW_IPAM.format(seconds=seconds, prefix=prefix))
    path.chmod(0o755)


def normalized(result: dict[str, Any]) -> dict[str, Any]:
    """A result with what differs between two equal ADDs (MACs, veth names, sandbox, host part) blanked."""
    for iface in result.get("interfaces", []):
        iface["mac"] = "mac"
        if iface["name"].startswith("veth"):
            iface["name"] = "veth"
        iface.pop("sandbox", None)
    for ip in result.get("ips", []):
        ip["address"] = ip["address"].rsplit(".", 1)[0]
    return result
