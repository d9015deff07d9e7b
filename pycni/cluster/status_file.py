"""The agent's status file, ``<run-dir>/agent.json``: what ``pycni doctor`` reads to tell a live agent.

Written by the reconciler after every successful pass (atomically, so a
reader never sees half a file); never removed, so after a crash it still
says which pid, node and subnet the agent had and when it last converged::

    {"pid": 4242, "node": "n1", "subnet": "10.244.1.0/24", "backend": "vxlan",
     "podMTU": 1450, "lastReconcile": 1796342400.5, "resyncSeconds": 5.0}

Contract: ``render_status(status)`` / ``parse_status(text)`` are pure inverses
(``parse_status`` raises ``ValueError`` on anything malformed and ignores
fields it does not know, so older and newer agents stay readable);
``write_status(run_dir, status)`` is the only I/O.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Any

__all__ = ["STATUS_FILE", "AgentStatus", "parse_status", "render_status", "write_status"]

STATUS_FILE = "agent.json"


@dataclass(frozen=True)
class AgentStatus:
    pid: int
    node: str
    subnet: IPv4Network | IPv6Network  # IPv6 in an IPv6-only cluster
    backend: str
    pod_mtu: int
    last_reconcile: float  # wall-clock seconds (time.time()) of the last successful reconcile pass
    resync_seconds: float  # how often the agent reconciles at the least: an older last_reconcile is stale


def render_status(status: AgentStatus) -> str:
    doc = {"pid": status.pid, "node": status.node, "subnet": str(status.subnet), "backend": status.backend,
           "podMTU": status.pod_mtu, "lastReconcile": status.last_reconcile,
           "resyncSeconds": status.resync_seconds}
    return json.dumps(doc, sort_keys=True) + "\n"


def parse_status(text: str) -> AgentStatus:
    try:
        doc: Any = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")

    def number(name: str) -> float:
        value = doc.get(name)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ValueError(f"{name}: missing or not a number")
        return float(value)

    node, backend = doc.get("node"), doc.get("backend")
    if not isinstance(node, str) or not isinstance(backend, str):
        raise ValueError("node/backend: missing or not a string")
    try:
        subnet = ip_network(str(doc.get("subnet")))
    except ValueError:
        raise ValueError(f"subnet: {doc.get('subnet')!r} is not a CIDR") from None
    return AgentStatus(pid=int(number("pid")), node=node, subnet=subnet, backend=backend,
                       pod_mtu=int(number("podMTU")), last_reconcile=number("lastReconcile"),
                       resync_seconds=number("resyncSeconds"))


def write_status(run_dir: str, status: AgentStatus) -> None:
    """Replace ``<run_dir>/agent.json`` atomically."""
    os.makedirs(run_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=".agent-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(render_status(status))
        os.chmod(tmp, 0o644)
        os.replace(tmp, os.path.join(run_dir, STATUS_FILE))
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
