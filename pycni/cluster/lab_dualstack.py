"""A dual-stack lab (``pycni lab up --ipv6``): IPv6 underlay addresses, an IPv6 pod network, its convergence.

An IPv6-only lab (``--ipv6-only``) is the same minus every IPv4 address on
nodes and pods: node K has only ``UNDERLAY6 ::(10+K)``, etcd listens on
``UNDERLAY6 ::1`` (lab_state's ``etcd_endpoint``), the cluster config has
``EnableIPv4`` false, and the agents run vxlan or host-gw over IPv6 alone.
The underlay router and the outside world keep their IPv4 side (unused).

The lab's underlay bridge gets ``UNDERLAY6 ::1`` beside its IPv4 address
and node K ``UNDERLAY6 ::(10+K)`` on its eth0 (no duplicate address
detection: the lab's addresses are unique by construction, and a tentative
address would delay the agent's first IPv6 lease), with a default route via
the underlay router, which routes IPv6 too: the outside world gets
``OUTSIDE6_IP`` behind ``OUTSIDE6_GW`` and, as for IPv4, no route to any pod
(only the agents' IPv6 masquerade lets pods reach it). The cluster config gets
``IPv6Network`` NETWORK6 with a /64 per node. A dual-stack lab has converged
when, beside the IPv4 routes lab.py checks, every node has an IPv6 route to
every other node's IPv6 subnet (read from the subnet.env each agent wrote).
Built with ``ip``, as the rest of the lab, never with pycni's kernel layer.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from ipaddress import IPv6Address, IPv6Network
from typing import Any

from pycni.cluster.config_v6 import Ipv6Settings
from pycni.cluster.lab_state import UNDERLAY, UNDERLAY6, LabState

__all__ = ["NETWORK6", "OUTSIDE6_IP", "UNDERLAY6", "converged", "node_ipv6", "node_subnet6", "node_up", "outside_up",
           "pod_ipv6", "settings", "underlay_up"]

NETWORK6 = IPv6Network("fd00:10:244::/56")
OUTSIDE6_GW = IPv6Address("fd00:203::1")
OUTSIDE6_IP = IPv6Address("fd00:203::10")


def node_ipv6(index: int) -> IPv6Address:
    return UNDERLAY6.network_address + 10 + index


def settings(state: LabState) -> Ipv6Settings | None:
    return Ipv6Settings(NETWORK6, 64) if state.ipv6 else None


def _ip(netns: str, *args: str) -> None:
    proc = subprocess.run(["ip", "-n", netns, *args], capture_output=True, text=True, check=False, timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(f"'ip -n {netns} {' '.join(args)}' failed: {proc.stderr.strip()}")


def underlay_up(state: LabState) -> None:
    if state.ipv6_only and state.backend not in ("vxlan", "host-gw"):
        raise ValueError(f"an IPv6-only lab needs the vxlan or host-gw backend, not {state.backend}")
    if state.ipv6:
        _ip(state.underlay_ns, "-6", "addr", "add", f"{UNDERLAY6.network_address + 1}/64", "dev", "ul0", "nodad")
        subprocess.run(["ip", "netns", "exec", state.underlay_ns, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"],
                       check=True, capture_output=True, timeout=30)


def outside_up(state: LabState) -> None:
    """IPv6 between the underlay router (ext0) and the outside world (eth0), once both links are up."""
    if state.ipv6:
        _ip(state.underlay_ns, "-6", "addr", "add", f"{OUTSIDE6_GW}/64", "dev", "ext0", "nodad")
        _ip(state.outside_ns, "-6", "addr", "add", f"{OUTSIDE6_IP}/64", "dev", "eth0", "nodad")
        _ip(state.outside_ns, "-6", "route", "add", "default", "via", str(OUTSIDE6_GW))


def node_up(state: LabState, netns: str, index: int) -> None:
    """Node ``index``'s underlay addresses and default routes (its eth0 is up): IPv4 unless IPv6-only, IPv6 if on."""
    if not state.ipv6_only:
        _ip(netns, "addr", "add", f"{UNDERLAY.network_address + 10 + index}/{UNDERLAY.prefixlen}", "dev", "eth0")
        _ip(netns, "route", "add", "default", "via", str(state.etcd_ip))
    if state.ipv6:
        _ip(netns, "-6", "addr", "add", f"{node_ipv6(index)}/64", "dev", "eth0", "nodad")
        _ip(netns, "-6", "route", "add", "default", "via", str(UNDERLAY6.network_address + 1))


def pod_ipv6(result: Mapping[str, Any]) -> str:
    """The pod's IPv6 address from its CNI result ("" when it has none)."""
    return next((str(ip["address"]).split("/")[0] for ip in result.get("ips", []) if ":" in str(ip["address"])), "")


def node_subnet6(state: LabState, name: str) -> IPv6Network | None:
    """The node's IPv6 subnet from its subnet.env (None until the agent wrote it)."""
    try:
        with open(os.path.join(state.node_dir(name), "run", "subnet.env"), encoding="utf-8") as f:
            values = dict(line.strip().split("=", 1) for line in f if "=" in line)
    except FileNotFoundError:
        return None
    text = values.get("PYCNI_IPV6_SUBNET")
    return IPv6Network(text, strict=False) if text else None


def _routes6(netns: str) -> set[IPv6Network]:
    out = subprocess.run(["ip", "-n", netns, "-j", "-6", "route", "show", "proto", "124"], capture_output=True,
                         text=True, check=False, timeout=30).stdout
    return {IPv6Network(r["dst"]) for r in json.loads(out or "[]") if r.get("type") != "blackhole"}


def converged(state: LabState) -> bool:
    """Every node has its IPv6 subnet and an IPv6 route to every other node's (True for an IPv4-only lab)."""
    if not state.ipv6:
        return True
    subnets = {name: node_subnet6(state, name) for name in state.nodes}
    if any(s is None for s in subnets.values()):
        return False
    return all(_routes6(node.netns) == {s for n, s in subnets.items() if n != name and s is not None}
               for name, node in state.nodes.items())
