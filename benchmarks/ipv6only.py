"""An IPv6-only cluster's data path against an IPv4-only one of the same backend, in the same run.

For each backend (vxlan, host-gw): ``pycni lab up --ipv6-only`` and an IPv4-only lab, 2 nodes each (how
long each took to converge, built one after the other, alternating which goes first per backend), a pod on
each node, then in ``--rounds`` rounds, taking turns between the labs so the machine's load drifts over
both alike: iperf3 (one TCP stream, ``--seconds`` s, receiver's Gbit/s) and 20 pings 0.1 s apart (average
RTT) pod to pod across the nodes. Printed: the medians and the ratios IPv6-only / IPv4-only.

Run as root from the repository: ``.venv/bin/python benchmarks/ipv6only.py``. Everything it creates is
removed at the end (both labs are torn down, also on failure).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.dualstack import iperf, rtt_ms
from pycni.cluster.lab import Lab


def _up(backend: str, root: str, ipv6_only: bool) -> tuple[Lab, float]:
    start = time.monotonic()
    lab = Lab.up(2, backend, root=root, ipv6_only=ipv6_only)
    return lab, time.monotonic() - start


def measure(backend: str, rounds: int, seconds: int, v6_first: bool) -> None:
    labs: dict[str, Lab] = {}
    ups: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="pycni-v6only-") as root:
        try:
            for name in (("v6", "v4") if v6_first else ("v4", "v6")):
                labs[name], ups[name] = _up(backend, str(Path(root) / name), name == "v6")
            targets = {}
            for name, lab in labs.items():
                a, b = lab.add_pod("n1", "a"), lab.add_pod("n2", "b")
                lab.exec("a", ["ping", "-c", "3", "-W", "2", b.ip])  # past duplicate address detection
                targets[name] = (a, b)
            rates: dict[str, list[float]] = {"v4": [], "v6": []}
            rtts: dict[str, list[float]] = {"v4": [], "v6": []}
            for _ in range(rounds):
                for name, lab in labs.items():
                    a, b = targets[name]
                    rates[name].append(iperf(b.netns, a.netns, b.ip, seconds))
                    rtts[name].append(rtt_ms(lab, "a", b.ip))
        finally:
            for lab in labs.values():
                lab.down()
    rate = {k: statistics.median(v) for k, v in rates.items()}
    rtt = {k: statistics.median(v) for k, v in rtts.items()}
    print(f"== {backend}: pod to pod across nodes, median of {rounds} rounds")
    print(f"iperf3 1 stream {seconds}s: IPv4-only {rate['v4']:.2f} Gbit/s, IPv6-only {rate['v6']:.2f} Gbit/s, "
          f"ratio {rate['v6'] / rate['v4']:.2f}")
    print(f"ping RTT avg:        IPv4-only {rtt['v4']:.3f} ms, IPv6-only {rtt['v6']:.3f} ms, "
          f"ratio {rtt['v6'] / rtt['v4']:.2f}")
    print(f"lab up (2 nodes, converged): IPv4-only {ups['v4']:.1f} s, IPv6-only {ups['v6']:.1f} s "
          f"({'IPv6-only' if v6_first else 'IPv4-only'} built first)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--backend", choices=("vxlan", "host-gw", "both"), default="both")
    args = parser.parse_args()
    for i, backend in enumerate(("vxlan", "host-gw") if args.backend == "both" else (args.backend,)):
        measure(backend, args.rounds, args.seconds, v6_first=i % 2 == 0)


if __name__ == "__main__":
    main()
