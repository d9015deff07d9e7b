"""``--probe``: active checks across nodes, from this node's namespace.

For each peer lease: a small ping to the peer's overlay address (its VTEP,
``S.0``, with vxlan; its pod gateway ``S.1`` with host-gw), with vxlan one to
its pod gateway ``S.1`` too (on its bridge once a pod ran there), then a
don't-fragment ping whose packet is exactly the pod MTU (payload MTU - 28:
20 bytes of IPv4 header, 8 of ICMP; 40 + 8 to a peer of an IPv6-only
cluster, whose leases and overlay are IPv6), as cilium's pod-to-pod-no-frag test
does. Small answered, big lost: an MTU black hole. All pings of all peers
run at once; each waits at most ``wait`` seconds.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from ipaddress import ip_address

from pycni.doctor.snapshot import LeaseView, ProbeResult

__all__ = ["probe_peers", "probe_target"]


def probe_target(peer: LeaseView, backend: str) -> str:
    return str(peer.subnet.network_address if backend == "vxlan" else peer.subnet[1])


def probe_peers(peers: Sequence[LeaseView], backend: str, pod_mtu: int | None, *,
                wait: float = 2.0) -> tuple[ProbeResult, ...]:
    ping = shutil.which("ping")
    if ping is None:
        raise RuntimeError("--probe needs ping (Debian: iputils-ping)")
    base = [ping, "-c", "1", "-W", str(max(int(wait), 1)), "-q", "-n"]
    sizes = {p.node: pod_mtu - (48 if p.subnet.version == 6 else 28) for p in peers} if pod_mtu else {}
    small = {p.node: subprocess.Popen([*base, probe_target(p, backend)], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL) for p in peers}
    gateways = {p.node: subprocess.Popen([*base, str(p.subnet[1])], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL) for p in peers if backend == "vxlan"}
    loud = [b for b in base if b != "-q"]  # ping says "local error: message too long" only when not quiet
    big = {p.node: subprocess.Popen([*loud, "-M", "do", "-s", str(sizes[p.node]), probe_target(p, backend)],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for p in peers if sizes}
    results = []
    for peer in peers:
        reachable = small[peer.node].wait() == 0
        df_ok, df_error = None, None
        if peer.node in big:
            output, _ = big[peer.node].communicate()
            df_ok = big[peer.node].returncode == 0
            df_error = None if df_ok else _ping_error(output)
        gateway_ok = gateways[peer.node].wait() == 0 if peer.node in gateways else None
        results.append(ProbeResult(peer.node, ip_address(probe_target(peer, backend)), reachable,
                                   sizes.get(peer.node), df_ok if reachable else None,
                                   df_error if reachable else None, peer.subnet[1] if peer.node in gateways else None,
                                   gateway_ok))
    return tuple(results)


def _ping_error(output: str) -> str | None:
    """ping's own complaint (``local error: message too long, mtu=1350``), if it printed one."""
    for line in output.splitlines():
        if "error" in line.lower() or "too long" in line.lower():
            return line.strip().split("ping: ", 1)[-1]
    return None
