"""Subnets no address or route on this host overlaps, for tests that build networks.

Several test runs share this kernel (xdist workers, other checkouts, podman
tests), so a test picks its subnets at random, or numbered per xdist worker,
among those nothing on the host uses yet:

- ``free_subnet4()``: a random 10.x.y.0/24 (x in 20..250);
- ``free_subnet(make)``: a random subnet of your own shape, ``make(rng)``;
- ``worker_subnet4()``: the next /24 in 10.(210+worker).0.0/16, for callers
  that make many networks before any of them is up.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import random
from collections.abc import Callable

from tests.support.host import ip_json

__all__ = ["free_subnet", "free_subnet4", "networks_in_use", "worker_subnet4"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks_in_use() -> list[Network]:
    """The networks of every address and every route (all tables, both families) on this host."""
    used: list[Network] = [
        ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}").network
        for link in ip_json("addr", "show")
        for a in link.get("addr_info", [])
    ]
    for family in ("-4", "-6"):
        for route in ip_json(family, "route", "show", "table", "all"):
            dst = route.get("dst", "")
            if dst and dst != "default":
                try:
                    used.append(ipaddress.ip_network(dst, strict=False))
                except ValueError:
                    continue
    return [n for n in used if n.prefixlen > 0]


def free_subnet(make: Callable[[random.Random], str]) -> Network:
    """A random subnet from ``make`` that nothing on the host overlaps."""
    rng = random.Random(os.urandom(8))
    used = networks_in_use()
    for _ in range(200):
        candidate = ipaddress.ip_network(make(rng))
        if not any(candidate.version == u.version and candidate.overlaps(u) for u in used):
            return candidate
    raise AssertionError("no free subnet found")


def free_subnet4(rng: random.Random | None = None) -> ipaddress.IPv4Network:
    """A random 10.x.y.0/24 (x in 20..250) that overlaps no address or route on the host.

    Random rather than counted: several test runs (xdist workers, other
    checkouts) share this kernel, and two bridges with one gateway address
    break both labs.
    """
    rng = rng or random.Random(os.urandom(8))
    used = [u for u in networks_in_use() if u.version == 4]
    for _ in range(200):
        candidate = ipaddress.IPv4Network(f"10.{rng.randint(20, 250)}.{rng.randint(0, 255)}.0/24")
        if not any(candidate.overlaps(u) for u in used):
            return candidate
    raise RuntimeError("no free 10.x.y.0/24 on this host")


_worker_subnets = itertools.count(1)


def _worker_index() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0


def worker_subnet4() -> str:
    """The next /24 in 10.(210+worker).0.0/16 that no address or route on the host overlaps."""
    used = [u for u in networks_in_use() if u.version == 4]
    for _ in range(250):
        n = (next(_worker_subnets) - 1) % 250 + 1
        net = ipaddress.ip_network(f"10.{210 + _worker_index()}.{n}.0/24")
        if not any(net.overlaps(u) for u in used):
            return str(net)
    raise RuntimeError("no free /24 for a podman network")
