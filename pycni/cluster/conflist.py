"""What the agent writes for the node's container runtime: the conflist and ``subnet.env``.

Contract:

- ``render_conflist(settings)`` is pure: the node's network as a conflist
  using pycni's plugins — bridge (gateway on the bridge, no masquerade of its
  own: the agent masquerades only traffic leaving the cluster) with
  host-local over the node subnet, then portmap, then (with NetworkPolicy
  on) netpol, which returns only when the pod's policy is enforced. Dual
  stack: host-local gets a second range set, the node's IPv6 subnet (its
  ``::1`` the bridge's gateway), and pods a ``::/0`` route. IPv6-only
  (``subnet`` None): only the IPv6 range and route.
- ``render_subnet_env(...)`` is pure: flannel's ``subnet.env`` keys under
  pycni names (``PYCNI_NETWORK``, ``PYCNI_SUBNET``, ``PYCNI_MTU``,
  ``PYCNI_IPMASQ``, ``PYCNI_BACKEND``; dual stack adds ``PYCNI_IPV6_NETWORK``
  and ``PYCNI_IPV6_SUBNET``, as Flannel's ``FLANNEL_IPV6_*``; IPv6-only has
  these two instead of ``PYCNI_NETWORK`` and ``PYCNI_SUBNET``, as Flannel
  writes its file with ``EnableIPv4`` false).
- ``write_if_changed(path, text)`` replaces a file atomically, only when its
  content differs (a restarted agent leaves files untouched): True if written.
- ``CONFLIST_NAME`` sorts first in a conf dir, where runtimes pick the
  lexically first file.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network
from typing import Any

__all__ = [
    "CONFLIST_NAME",
    "SUBNET_ENV",
    "NodeNetwork",
    "render_conflist",
    "render_subnet_env",
    "write_if_changed",
]

CONFLIST_NAME = "00-pycni-cluster.conflist"
SUBNET_ENV = "subnet.env"
CNI_VERSION = "1.0.0"


@dataclass(frozen=True)
class NodeNetwork:
    name: str  # the CNI network name
    cluster: IPv4Network | None  # None (and subnet None): IPv6-only
    subnet: IPv4Network | None
    mtu: int
    bridge: str = "cni0"
    ipam_data_dir: str | None = None  # None: host-local's default (/var/lib/cni/networks)
    policy_socket: str | None = None  # the policy agent's socket: chains netpol last; None: no policy
    policy_timeout: float = 10.0  # how long a pod's ADD waits for its policy
    ipv6_subnet: IPv6Network | None = None  # dual stack: the node's IPv6 subnet


def render_conflist(net: NodeNetwork) -> str:
    ipam: dict[str, Any] = {"type": "host-local", "ranges": [], "routes": []}
    if net.subnet is not None:
        ipam["ranges"].append([{"subnet": str(net.subnet), "gateway": str(net.subnet[1])}])
        ipam["routes"].append({"dst": "0.0.0.0/0"})
    if net.ipv6_subnet is not None:
        ipam["ranges"].append([{"subnet": str(net.ipv6_subnet), "gateway": str(net.ipv6_subnet[1])}])
        ipam["routes"].append({"dst": "::/0"})
    if net.ipam_data_dir:
        ipam["dataDir"] = net.ipam_data_dir
    plugins: list[dict[str, Any]] = [
        {
            "type": "bridge",
            "bridge": net.bridge,
            "isGateway": True,
            "ipMasq": False,
            "hairpinMode": True,
            "mtu": net.mtu,
            "ipam": ipam,
        },
        {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
    ]
    if net.policy_socket:
        plugins.append({"type": "netpol", "agentSocket": net.policy_socket, "timeoutSeconds": net.policy_timeout})
    doc = {"cniVersion": CNI_VERSION, "name": net.name, "plugins": plugins}
    return json.dumps(doc, indent=2) + "\n"


def render_subnet_env(cluster: IPv4Network | None, subnet: IPv4Network | None, mtu: int, backend: str,
                      ipmasq: bool = True, *, ipv6: tuple[IPv6Network, IPv6Network] | None = None) -> str:
    """``ipv6`` is (the cluster's IPv6 network, the node's IPv6 subnet) in a dual-stack or IPv6-only cluster."""
    lines = [] if cluster is None or subnet is None else [
        f"PYCNI_NETWORK={cluster}",
        f"PYCNI_SUBNET={subnet[1]}/{subnet.prefixlen}",
    ]
    if ipv6 is not None:
        lines += [f"PYCNI_IPV6_NETWORK={ipv6[0]}", f"PYCNI_IPV6_SUBNET={ipv6[1][1]}/{ipv6[1].prefixlen}"]
    lines += [
        f"PYCNI_MTU={mtu}",
        f"PYCNI_IPMASQ={'true' if ipmasq else 'false'}",
        f"PYCNI_BACKEND={backend}",
    ]
    return "\n".join(lines) + "\n"


def write_if_changed(path: str, text: str) -> bool:
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return False
    except FileNotFoundError:
        pass
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".pycni-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True
