"""A dual-stack cluster's IPv6 data path against its IPv4 one, in the same lab and the same run.

For each backend (vxlan, host-gw): one ``pycni lab up --ipv6`` of 2 nodes, a pod on each, then in
``--rounds`` rounds, taking turns so the machine's load drifts over both families alike: iperf3 (one TCP
stream, ``--seconds`` s, receiver's Gbit/s) and 20 pings 0.1 s apart (average RTT) pod to pod across the
nodes, over IPv4 and over IPv6. Printed: the medians and the ratios IPv6/IPv4; also how long ``lab up``
took to converge for the dual-stack lab and, built right after, an IPv4-only lab of the same size.

Run as root from the repository: ``.venv/bin/python benchmarks/dualstack.py``. Everything it creates is
removed at the end.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pycni.cluster.lab import Lab


def iperf(server_ns: str, client_ns: str, ip: str, seconds: int) -> float:
    server = subprocess.Popen(["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):  # until the server listens
            out = subprocess.run(["ip", "netns", "exec", client_ns, "iperf3", "-c", ip, "-t", str(seconds), "-J"],
                                 capture_output=True, text=True, check=False)
            result = json.loads(out.stdout or "{}")
            if out.returncode == 0 and "error" not in result:
                return float(result["end"]["sum_received"]["bits_per_second"]) / 1e9
            time.sleep(0.2)
        raise RuntimeError(f"iperf3 to {ip} failed: {out.stdout[-300:]}")
    finally:
        server.kill()
        server.wait()


def rtt_ms(lab: Lab, src: str, ip: str) -> float:
    out = lab.exec(src, ["ping", "-c", "20", "-i", "0.1", "-q", ip]).stdout
    match = re.search(r"= [\d.]+/([\d.]+)/", out)
    if match is None:
        raise RuntimeError(f"ping {ip} failed: {out[-200:]}")
    return float(match.group(1))


def measure(backend: str, rounds: int, seconds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="pycni-dual-") as root:
        start = time.monotonic()
        lab = Lab.up(2, backend, root=root, ipv6=True)
        up_dual = time.monotonic() - start
        try:
            a, b = lab.add_pod("n1", "a"), lab.add_pod("n2", "b")
            lab.exec("a", ["ping", "-c", "3", "-W", "2", b.ipv6])  # past duplicate address detection
            rates: dict[int, list[float]] = {4: [], 6: []}
            rtts: dict[int, list[float]] = {4: [], 6: []}
            for _ in range(rounds):
                for family, ip in ((4, b.ip), (6, b.ipv6)):
                    rates[family].append(iperf(b.netns, a.netns, ip, seconds))
                    rtts[family].append(rtt_ms(lab, "a", ip))
        finally:
            lab.down()
        start = time.monotonic()
        lab4 = Lab.up(2, backend, root=root)
        up_v4 = time.monotonic() - start
        lab4.down()
    rate = {f: statistics.median(v) for f, v in rates.items()}
    rtt = {f: statistics.median(v) for f, v in rtts.items()}
    print(f"== {backend}: pod to pod across nodes, median of {rounds} rounds")
    print(f"iperf3 1 stream {seconds}s: IPv4 {rate[4]:.2f} Gbit/s, IPv6 {rate[6]:.2f} Gbit/s, "
          f"IPv6/IPv4 {rate[6] / rate[4]:.2f}")
    print(f"ping RTT avg:        IPv4 {rtt[4]:.3f} ms, IPv6 {rtt[6]:.3f} ms, IPv6/IPv4 {rtt[6] / rtt[4]:.2f}")
    print(f"lab up (2 nodes, converged): dual stack {up_dual:.1f} s, IPv4 only {up_v4:.1f} s, "
          f"ratio {up_dual / up_v4:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--backend", choices=("vxlan", "host-gw", "both"), default="both")
    args = parser.parse_args()
    for backend in ("vxlan", "host-gw") if args.backend == "both" else (args.backend,):
        measure(backend, args.rounds, args.seconds)


if __name__ == "__main__":
    main()
