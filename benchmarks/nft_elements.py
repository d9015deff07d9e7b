"""Element changes through libnftables against nfnetlink directly, quiet and beside a NetworkPolicy-sized table.

Every libnftables command first fetches and renders a cache of the whole
ruleset. This measures what that costs pycni's two element writers, in a
network namespace of its own (as a process inside it, so the nfnetlink
sockets are reused as in the executor and the agent):

- portmap: ADD then DEL of one pod with two mappings on a network that
  already has one (``NftBackend`` with the libnftables runner, as before,
  against the default nfnetlink path), process CPU per pod;
- the policy agent: one pod's address leaving a peer set and another's
  joining (a label change), ``Enforcer`` with and without
  ``apply_elements``, process CPU per change.

Each is measured with the namespace's ruleset holding only its own table,
then again beside a table of 2,400 chains (one rule each) and 1,200 sets,
the size benchmarks/policy.py compiles for 1,000 policies. Run as root:
``python benchmarks/nft_elements.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from ipaddress import ip_interface
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pycni.net.firewall import nft
from pycni.plugins.portmap.conf import Attachment, FamilyTarget, PortMapConf, PortMapping
from pycni.plugins.portmap.nft_io import NftBackend
from pycni.policy.enforcer import Enforcer
from pycni.policy.node_service import apply_elements
from pycni.policy.ruleset import Chain, Ruleset, Set

NET = PortMapConf(network="bench", cni_version="1.0.0", mappings=(), snat=True)


class _Libnftables:
    list_json = staticmethod(nft.list_json)
    apply = staticmethod(nft.apply)


def _target(i: int) -> list[FamilyTarget]:
    return [FamilyTarget(4, ip_interface(f"10.77.{i // 200}.{i % 200 + 2}/16"),
                         (PortMapping(20000 + i, 80, "tcp"), PortMapping(30000 + i, 53, "udp")))]


def _cpu_ms(rounds: int, step: Callable[[int], None]) -> float:
    start = time.process_time()
    for i in range(rounds):
        step(i)
    return (time.process_time() - start) / rounds * 1000


def portmap(rounds: int, backend: NftBackend) -> float:
    def pod(i: int) -> None:
        att = Attachment("bench", f"c{i}", "eth0")
        backend.forward(att, _target(1 + i % 500), NET)
        backend.unforward(att)

    return _cpu_ms(rounds, pod)


def policy(rounds: int, with_batches: bool) -> float:
    chains = {f"pol_{i}_in": Chain(f"pol_{i}_in", (f"ip saddr @peer_{i}_v4 accept",)) for i in range(50)}
    peers = {f"peer_{i}_v4": frozenset(f"10.88.{i}.{j}" for j in range(1, 40)) for i in range(50)}

    def ruleset(moved: int) -> Ruleset:
        sets = dict(peers)
        sets["peer_0_v4"] = peers["peer_0_v4"] - {"10.88.0.1"} | {f"10.88.200.{moved % 250}"}
        return Ruleset({n: Set(n, "ipv4_addr", e) for n, e in sets.items()}, {}, chains)

    enforcer = Enforcer(nft.apply, apply_elements=apply_elements if with_batches else None)
    enforcer.enforce(ruleset(0))
    return _cpu_ms(rounds, lambda i: enforcer.enforce(ruleset(i + 1)))


def big_table() -> None:
    lines = ["add table inet pycni_bench_big"]
    for c in range(2400):
        lines += [f"add chain inet pycni_bench_big c{c}",
                  f"add rule inet pycni_bench_big c{c} ip saddr 10.1.{c // 250}.{c % 250} counter accept"]
    for s in range(1200):
        elements = f"10.2.{s // 250}.{s % 250}"
        lines.append(f"add set inet pycni_bench_big s{s} {{ type ipv4_addr; elements = {{ {elements} }} }}")
    nft.apply("\n".join(lines))


def measure(rounds: int) -> None:
    NftBackend(lock=contextlib.nullcontext).forward(Attachment("bench", "kept", "eth0"), _target(0), NET)
    for label in ("quiet", "beside a policy-sized table"):
        if label != "quiet":
            big_table()
        old = portmap(rounds, NftBackend(_Libnftables(), contextlib.nullcontext))
        new = portmap(rounds, NftBackend(lock=contextlib.nullcontext))
        print(f"{label}: portmap ADD+DEL CPU per pod: libnftables {old:.2f} ms, nfnetlink {new:.2f} ms "
              f"({new / old:.2f}x)")
        old = policy(rounds, with_batches=False)
        new = policy(rounds, with_batches=True)
        print(f"{label}: policy label change CPU: libnftables {old:.2f} ms, nfnetlink {new:.2f} ms ({new / old:.2f}x)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)  # the child, in the namespace
    args = parser.parse_args()
    if args.inside:
        measure(args.rounds)
        return 0
    name = f"pycni-bench-nft-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        return subprocess.run(["ip", "netns", "exec", name, sys.executable, os.path.abspath(__file__), "--inside",
                               "--rounds", str(args.rounds)], check=False).returncode
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


if __name__ == "__main__":
    sys.exit(main())
