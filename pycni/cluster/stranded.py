"""A node's pods and its subnet: which subnet to ask for, and what is left behind when the node had to move.

docs/DESIGN.md "A node that loses its lease" says why; in short: a node
asks for the subnet its pods use, keeps it whenever the datastore lets it,
and when another node holds it, moves to a new subnet without touching the
pods' addresses, says which pods were left on the old one, and takes the
old gateway off its bridge.

Contract:

- ``previous_subnet(run_dir)``: the subnet of the ``subnet.env`` the agent
  last wrote (Flannel's PrevSubnet; its IPv6 subnet in an IPv6-only
  cluster), None without a readable one.
- ``stranded(reservations, subnet)`` (pure): host-local's reservations of
  the node's network outside ``subnet`` (of its family: IPv6 in an
  IPv6-only cluster), the addresses of pods the node can no longer route.
- ``foreign_gateways(addresses, cluster, subnet)`` (pure): the bridge's IPv4
  addresses shaped like the agent's gateways (the first address of a
  subnet of the cluster network, with the subnet's length) outside
  ``subnet``: gateways of a subnet the node gave up. Left in place, their
  prefix route would send this node's traffic for the subnet's new owner
  into the local bridge, and the bridge plugin would refuse the new gateway
  (an IPv4 bridge address that differs is a conflict). Anything else on the
  bridge is someone else's and stays. ``foreign_gateways6`` is the same for
  a dual-stack node's IPv6 gateways (``net[1]/len`` of an IPv6 subnet of the
  cluster's IPv6 network), which move with the IPv4 subnet they are paired with.
- ``LeftBehind(...).check(subnet)``: run on every reconcile (the
  reconciler's ``NodeFiles`` say which bridge, network, host-local dataDir
  and run dir), in the node's namespace. Deletes foreign gateways from the
  bridge, logs each newly stranded pod once (an error: it needs recreating
  by its runtime), keeps ``pycni_agent_stranded_pods`` and
  ``<run-dir>/stranded-pods.json`` (a JSON list of {ip, containerID,
  ifname}, written when it changes) current. Returns the stranded pods.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Interface, IPv4Network, IPv6Interface, IPv6Network, ip_network
from typing import TYPE_CHECKING

from pycni.cluster.conflist import SUBNET_ENV, write_if_changed

if TYPE_CHECKING:
    from pycni.cluster.agent_metrics import AgentMetrics
    from pycni.ipam.host_local.store import Reservation
    from pycni.net.addrs import IPInterface

__all__ = ["STRANDED_FILE", "LeftBehind", "foreign_gateways", "foreign_gateways6", "previous_subnet", "stranded"]

log = logging.getLogger("pycni.agent")

STRANDED_FILE = "stranded-pods.json"


def previous_subnet(run_dir: str) -> IPv4Network | IPv6Network | None:
    """PYCNI_SUBNET of ``<run_dir>/subnet.env`` (written as gateway/len), else PYCNI_IPV6_SUBNET, or None."""
    try:
        with open(os.path.join(run_dir, SUBNET_ENV), encoding="utf-8") as f:
            values = dict(line.strip().split("=", 1) for line in f if "=" in line)
        return ip_network(values.get("PYCNI_SUBNET") or values["PYCNI_IPV6_SUBNET"], strict=False)
    except (OSError, KeyError, ValueError):
        return None


def stranded(reservations: Iterable[Reservation], subnet: IPv4Network | IPv6Network) -> list[Reservation]:
    """The reservations of ``subnet``'s family outside it, in address order."""
    return sorted((r for r in reservations if r.ip.version == subnet.version and r.ip not in subnet),
                  key=lambda r: r.ip)


def foreign_gateways(addresses: Iterable[IPInterface], cluster: IPv4Network,
                     subnet: IPv4Network) -> list[IPv4Interface]:
    """The gateway-shaped IPv4 addresses (``net[1]/len``) inside ``cluster`` but outside ``subnet``."""
    return [a for a in addresses
            if isinstance(a, IPv4Interface) and a.network.prefixlen == subnet.prefixlen
            and a.ip == a.network[1] and a.ip in cluster and a.ip not in subnet]


def foreign_gateways6(addresses: Iterable[IPInterface], cluster: IPv6Network,
                      subnet: IPv6Network) -> list[IPv6Interface]:
    """The gateway-shaped IPv6 addresses inside ``cluster`` but outside ``subnet`` (dual stack)."""
    return [a for a in addresses
            if isinstance(a, IPv6Interface) and a.network.prefixlen == subnet.prefixlen
            and a.ip == a.network[1] and a.ip in cluster and a.ip not in subnet]


def _as_json(pods: Sequence[Reservation]) -> str:
    return json.dumps([{"ip": str(p.ip), "containerID": p.container_id, "ifname": p.ifname} for p in pods],
                      indent=2) + "\n"


class LeftBehind:
    """What the node left on subnets it no longer holds; see the module docstring."""

    def __init__(self, *, bridge: str, network: str, data_dir: str | None, run_dir: str, cluster: IPv4Network | None,
                 metrics: AgentMetrics, cluster6: IPv6Network | None = None) -> None:
        self.bridge = bridge
        self.network = network
        self.data_dir = data_dir
        self.run_dir = run_dir
        self.cluster = cluster
        self.cluster6 = cluster6
        self.metrics = metrics
        self._reported: set[tuple[str, str]] = set()

    def check(self, subnet: IPv4Network | IPv6Network, subnet6: IPv6Network | None = None) -> list[Reservation]:
        """``subnet`` is the lease's (IPv6 in an IPv6-only cluster), ``subnet6`` its IPv6 side."""
        self._drop_foreign_gateways(subnet, subnet6)
        pods = stranded(self._reservations(), subnet)
        for pod in pods:
            if (str(pod.ip), pod.container_id) not in self._reported:
                log.error("pod %s (%s) keeps address %s outside this node's subnet %s: it cannot be reached "
                          "from other nodes until its runtime recreates it", pod.container_id, pod.ifname or "-",
                          pod.ip, subnet)
        self._reported = {(str(p.ip), p.container_id) for p in pods}
        self.metrics.set("pycni_agent_stranded_pods", len(pods))
        path = os.path.join(self.run_dir, STRANDED_FILE)
        if pods:
            write_if_changed(path, _as_json(pods))
        elif os.path.exists(path):
            os.unlink(path)
        return pods

    def _reservations(self) -> tuple[Reservation, ...]:
        from pycni.ipam.host_local.config import DEFAULT_DATA_DIR
        from pycni.ipam.host_local.store import DiskStore

        return DiskStore(self.data_dir or DEFAULT_DATA_DIR, self.network).reservations()

    def _drop_foreign_gateways(self, subnet: IPv4Network | IPv6Network, subnet6: IPv6Network | None) -> None:
        from pycni.net.addrs import del_address, list_addresses
        from pycni.net.errors import LinkNotFound

        try:
            addresses = list_addresses(self.bridge, 4)
            addresses6 = list_addresses(self.bridge, 6) if self.cluster6 and subnet6 else []
        except LinkNotFound:
            return  # no bridge yet: no pod was ever attached
        foreign: list[IPv4Interface | IPv6Interface] = []
        if self.cluster is not None and isinstance(subnet, IPv4Network):
            foreign += foreign_gateways(addresses, self.cluster, subnet)
        if self.cluster6 is not None and subnet6 is not None:
            foreign += foreign_gateways6(addresses6, self.cluster6, subnet6)
        for address in foreign:
            if del_address(self.bridge, address, missing_ok=True):
                log.warning("removed %s from %s: the node no longer holds %s", address, self.bridge,
                            address.network)
                self.metrics.inc("pycni_agent_kernel_changes_total", action="removed")
