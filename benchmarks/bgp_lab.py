"""The bgp backend against host-gw (plain routes, the reference) and vxlan, on the same lab, in one run.

Per backend, a 3-node lab (``pycni lab``; bgp with its top-of-rack bird):

- join: a fourth node is added; seconds until every node routes to its
  subnet and it routes to theirs (``Lab.wait_ready``: with bgp, the ToR too);
- leave: that node is removed; seconds until no node (nor the ToR) routes
  to its subnet any more;
- TCP: iperf3 from a pod on n1 to a pod on n2, ``--time`` seconds, one stream;
- RTT: the mean of 20 pings between the same pods;
  both the median of ``--rounds`` rounds in which the backends take turns (the machine is shared);
- bgp only: pings lost, at 10 per second, while n2's bird is killed (-9)
  and restarted by its agent.

Run as root from the repository: ``.venv/bin/python benchmarks/bgp_lab.py
[--time 3 --rounds 3] [--backends host-gw,vxlan,bgp]``. Needs etcd, iperf3 and bird2.
Not part of the test suite; ratios are against host-gw from the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pycni.cluster.lab import Lab
from pycni.cluster.lab_bgp import node_bird, tor_subnets


def _withdrawn(lab: Lab, subnet: object) -> bool:
    if any(subnet in lab.owned_routes(n) for n in lab.state.nodes):
        return False
    return lab.state.backend != "bgp" or subnet not in tor_subnets(lab.state)


def _iperf(lab: Lab, client: str, server: str, seconds: int) -> float:
    ip = lab.state.pods[server].ip
    assert ip is not None
    daemon = subprocess.Popen(lab.exec_argv(server, ["iperf3", "-s", "-1"]), stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        out = lab.exec(client, ["iperf3", "-c", ip, "-t", str(seconds), "-J"], timeout=seconds + 30).stdout
        return float(json.loads(out)["end"]["sum_received"]["bits_per_second"]) / 1e9
    finally:
        daemon.wait(timeout=10)


def _rtt_ms(lab: Lab, client: str, server: str) -> float:
    ip = lab.state.pods[server].ip
    assert ip is not None
    out = lab.exec(client, ["ping", "-c", "20", "-i", "0.05", "-q", ip]).stdout
    return float(out.rsplit("=", 1)[1].split("/")[1])


def _lost_across_bird_kill(lab: Lab, client: str, server: str) -> tuple[int, int, float]:
    """(lost, sent, seconds until the new bird ran) while n2's bird is killed and restarted."""
    bird = node_bird(lab.state, "n2")
    pid = bird.pid()
    assert pid is not None
    ip = lab.state.pods[server].ip
    assert ip is not None
    ping = subprocess.Popen(lab.exec_argv(client, ["ping", "-i", "0.1", "-c", "100", "-W", "1", "-q", ip]),
                            stdout=subprocess.PIPE, text=True)
    time.sleep(1)
    os.kill(pid, signal.SIGKILL)
    start = time.monotonic()
    while bird.pid() in (None, pid):
        time.sleep(0.05)
    restart = time.monotonic() - start
    out, _ = ping.communicate(timeout=60)
    stats = out.split("packets transmitted")[0].rsplit("\n", 1)[1]
    sent = int(stats.strip())
    received = int(out.split(" received")[0].rsplit(",", 1)[1])
    return sent - received, sent, restart


def build(backend: str, root: str) -> tuple[Lab, dict[str, float]]:
    """A lab with pods a (n1) and b (n2), and its join and leave times."""
    lab = Lab.up(3, backend, root=root, wait=120)
    try:
        lab.add_pod("n1", "a")
        lab.add_pod("n2", "b")
        out: dict[str, float] = {}
        node = lab.add_node(wait=0)
        out["join_s"] = lab.wait_ready(120)
        subnet = lab.node_subnet(node.name)
        start = time.monotonic()
        lab.remove_node(node.name)
        while not _withdrawn(lab, subnet):
            time.sleep(0.05)
        out["leave_s"] = time.monotonic() - start
    except BaseException:
        lab.down()
        raise
    return lab, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time", type=int, default=3, help="iperf3 seconds per round (default 3)")
    parser.add_argument("--rounds", type=int, default=3, help="TCP/RTT rounds, backends taking turns (default 3)")
    parser.add_argument("--backends", default="host-gw,vxlan,bgp")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="pycni-bench-bgp-")
    labs: dict[str, Lab] = {}
    results: dict[str, dict[str, float]] = {}
    try:
        for backend in args.backends.split(","):
            labs[backend], results[backend] = build(backend, root)
        # The machine is shared: backends take turns, and the median of the rounds is kept.
        samples: dict[str, list[tuple[float, float]]] = {b: [] for b in labs}
        for _ in range(args.rounds):
            for backend, lab in labs.items():
                samples[backend].append((_iperf(lab, "a", "b", args.time), _rtt_ms(lab, "a", "b")))
        for backend, rows in samples.items():
            results[backend]["tcp_gbps"] = statistics.median(r[0] for r in rows)
            results[backend]["rtt_ms"] = statistics.median(r[1] for r in rows)
        if "bgp" in labs:
            lost, sent, restart = _lost_across_bird_kill(labs["bgp"], "a", "b")
            results["bgp"].update(bird_kill_lost=lost, bird_kill_sent=sent, bird_restart_s=restart)
    finally:
        for lab in labs.values():
            lab.down()
    ref = results.get("host-gw")
    print(f"{'backend':<8} {'join s':>7} {'leave s':>8} {'TCP Gbit/s':>11} {'RTT ms':>7}   vs host-gw (TCP, RTT)")
    for backend, r in results.items():
        ratio = f"{r['tcp_gbps'] / ref['tcp_gbps']:.2f}x, {r['rtt_ms'] / ref['rtt_ms']:.2f}x" if ref else "-"
        print(f"{backend:<8} {r['join_s']:>7.2f} {r['leave_s']:>8.2f} {r['tcp_gbps']:>11.2f} {r['rtt_ms']:>7.3f}   "
              f"{ratio}")
    if "bgp" in results:
        r = results["bgp"]
        print(f"bgp: kill -9 of a node's bird: restarted after {r['bird_restart_s']:.2f} s, "
              f"{r['bird_kill_lost']:.0f} of {r['bird_kill_sent']:.0f} pings (10/s) lost")
    if not os.listdir(root):
        os.rmdir(root)


if __name__ == "__main__":
    main()
