"""The wireguard backend's data path against its ceiling and against vxlan, in one run.

Three iperf3 TCP runs (one stream, receiver's figure), taking turns in ``--rounds`` rounds (the median is
printed) so they never share the CPU and the machine's load drifts over all three alike:

1. ceiling: wireguard-go between two plain network namespaces joined by a
   veth (device MTU 1440, as the pods get), no pycni at all: what the
   userspace data path can do on this machine;
2. wireguard: pod to pod across two nodes of a ``pycni lab --backend wireguard``, and node to node over the
   same device (the nodes' own ``.0`` addresses: what the pods' veth and bridge add is the difference);
3. vxlan: pod to pod across two nodes of a ``pycni lab --backend vxlan``.

Printed: the three rates and the ratios wireguard/ceiling (target >= 90 %)
and wireguard/vxlan, then how long pod traffic stops while a node rotates
its key (``pycni node rotate-key``; contract <= 2 s), from a 20 ms ping.

Run as root from the repository: ``.venv/bin/python benchmarks/wireguard.py``
(``make bench`` runs it). Everything it creates is removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from ipaddress import IPv4Network
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pycni.cluster.backends.wireguard_keys import generate_private_key, public_key, to_hex
from pycni.cluster.lab import PREFIX, Lab
from pycni.net import wireguard_go
from pycni.net.netns import run_in_netns
from pycni.net.wireguard_uapi import set_device


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=check)


def iperf(server_ns: str, client_ns: str, ip: str, seconds: int) -> float:
    """Gbit/s received, one TCP stream for ``seconds``."""
    server = subprocess.Popen(["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):  # until the server listens
            out = sh("ip", "netns", "exec", client_ns, "iperf3", "-c", ip, "-t", str(seconds), "-J", check=False)
            result = json.loads(out.stdout or "{}")
            if out.returncode == 0 and "error" not in result:
                return float(result["end"]["sum_received"]["bits_per_second"]) / 1e9
            time.sleep(0.2)
        raise RuntimeError(f"iperf3 to {ip} failed: {out.stdout[-300:]}")
    finally:
        server.kill()
        server.wait()


@contextlib.contextmanager
def plain_pair(tmp: str) -> Iterator[tuple[str, str, str]]:
    """Two namespaces joined by a veth, wireguard-go in each (device MTU 1440): (server ns, client ns, server ip)."""
    stamp = os.getpid() % 100000
    a, b = f"wgb-a-{stamp}", f"wgb-b-{stamp}"
    pids: list[int] = []
    try:
        for ns in (a, b):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", a, "link", "add", "ve", "type", "veth", "peer", "name", "ve", "netns", b)
        keys = {a: generate_private_key(), b: generate_private_key()}
        for i, (ns, other) in enumerate(((a, b), (b, a)), start=1):
            sh("ip", "-n", ns, "addr", "add", f"192.0.2.{i}/24", "dev", "ve")
            sh("ip", "-n", ns, "link", "set", "ve", "up")

            def start(ns: str = ns, other: str = other, i: int = i) -> int:
                pid = wireguard_go.start_wireguard_go("wgb0", f"{tmp}/{ns}.log")
                set_device(wireguard_go.wait_for_socket(pid, "wgb0"), [
                    ("private_key", to_hex(keys[ns])), ("listen_port", "51820"),
                    ("public_key", to_hex(public_key(keys[other]))), ("endpoint", f"192.0.2.{3 - i}:51820"),
                    ("allowed_ip", f"10.99.{3 - i}.0/24")])
                return pid

            pids.append(run_in_netns(f"/run/netns/{ns}", start))
            sh("ip", "-n", ns, "addr", "add", f"10.99.{i}.1/16", "dev", "wgb0")
            sh("ip", "-n", ns, "link", "set", "wgb0", "mtu", "1440", "up")
        yield b, a, "10.99.2.1"
    finally:
        for pid in pids:
            wireguard_go.stop_wireguard_go(pid, "wgb0")
        for ns in (a, b):
            sh("ip", "netns", "delete", ns, check=False)


@contextlib.contextmanager
def two_pods(backend: str, root: str) -> Iterator[tuple[Lab, str, str, str]]:
    """A 2-node lab with a pod on each: (lab, server ns, client ns, server ip)."""
    lab = Lab.up(2, backend, root=root)
    try:
        a, b = lab.add_pod("n1", "a"), lab.add_pod("n2", "b")
        assert lab.ping("a", str(b.ip), count=3)
        yield lab, b.netns, a.netns, str(b.ip)
    finally:
        lab.down()


def rotation_gap(lab: Lab, src_ns: str, dst: str) -> float:
    """The longest time without ping replies (20 ms interval) around a key rotation of the destination's node."""
    from pycni.cli.wireguard import rotate_key

    ping = subprocess.Popen(["ip", "netns", "exec", src_ns, "ping", "-D", "-i", "0.02", "-W", "5", "-w", "8", dst],
                            stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)
    lab.with_kv(lambda kv: rotate_key(kv, PREFIX, "n2", timeout=30))
    out, _ = ping.communicate(timeout=60)
    stamps = [float(line[1:].split("]")[0]) for line in out.splitlines()
              if line.startswith("[") and "bytes from" in line]
    return max((b - a for a, b in itertools.pairwise(stamps)), default=float("inf"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="length of each iperf3 run (default 5)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds in which the three take turns (default 3)")
    args = parser.parse_args()
    rates: dict[str, list[float]] = {"ceiling": [], "wireguard": [], "node": [], "vxlan": []}
    with tempfile.TemporaryDirectory(prefix="pycni-bench-wg-") as tmp, plain_pair(tmp) as plain, \
            two_pods("wireguard", tmp) as wg_lab, two_pods("vxlan", tmp) as vx_lab:
        lab = wg_lab[0]
        node_path = (lab.state.nodes["n2"].netns, lab.state.nodes["n1"].netns,
                     str(IPv4Network(str(lab.node_subnet("n2"))).network_address))
        paths = {"ceiling": plain, "wireguard": wg_lab[1:], "node": node_path, "vxlan": vx_lab[1:]}
        for _ in range(args.rounds):
            for name, (server, client, ip) in paths.items():
                rates[name].append(iperf(server, client, ip, args.seconds))
        gap = rotation_gap(wg_lab[0], wg_lab[2], wg_lab[3])
    top, wg, node, vx = (statistics.median(rates[name]) for name in ("ceiling", "wireguard", "node", "vxlan"))
    print(f"== wireguard backend: iperf3, 1 TCP stream, Gbit/s (receiver), median of {args.rounds} rounds; "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"wireguard-go between two plain namespaces (ceiling)  {top:7.3f}")
    print(f"pod to pod across nodes, wireguard backend           {wg:7.3f}   {wg / top:6.1%} of the ceiling "
          "(target >= 90%)")
    print(f"node to node over the agent's device (no pod veth)  {node:7.3f}   {node / top:6.1%} of the ceiling")
    print(f"pod to pod across nodes, vxlan backend               {vx:7.3f}   wireguard = {wg / vx:6.1%} of vxlan")
    print(f"key rotation: longest pause in a 20 ms ping          {gap:7.3f} s (contract <= 2 s)")


if __name__ == "__main__":
    main()
