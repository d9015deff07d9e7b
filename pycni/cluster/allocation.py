"""Which subnet a node may take: a pure choice over one read of the leases and histories.

``choose_subnet`` gets the cluster config, the subnets held by a live key
(parsable or not: each one blocks its subnet), the histories and the
quarantine, and returns, in order:

0. the subnet the node asks for (``prefer``: the one its running pods are
   addressed in, from the subnet.env it wrote, as Flannel's PrevSubnet), if
   no live key holds it and no other node's history quarantines it, even
   when the store has no history of it (restored from an old backup,
   history deleted);
1. the subnet the history says the node held last, if no live key holds it
   (quarantine does not apply to a subnet's own last owner);
2. a free subnet: no live key, and no history, or released, or expired more
   than ``quarantine`` seconds ago. The lowest first, or, given an ``rng``
   (after losing a race), from a random start, so agents starting together
   spread out instead of colliding again.

``NetworkFull`` when none is left, saying when the first quarantined one is
free again. A live key or history of another length than the config's
subnets (after a config change) blocks every subnet it overlaps. Subnets
are of the config's ``lease_network``: IPv4, or IPv6 in an IPv6-only cluster
(a key of the other family blocks nothing). Nothing here reads the store or
the clock: subnets.py passes both in.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping

from pycni.cluster.config import AnyNetwork, ClusterConfig
from pycni.cluster.lease import History, NetworkFull

__all__ = ["blocked", "choose_subnet", "may_take", "within"]


def within(cfg: ClusterConfig, subnet: AnyNetwork, span: tuple[int, int] | None = None) -> set[AnyNetwork]:
    """The subnets of ``cfg`` that overlap ``subnet`` (which may have another length after a config change).

    ``span`` is ``_span(cfg)``, passed in by callers that ask for many subnets.
    """
    network, length = cfg.lease_network, cfg.lease_len
    if subnet.version != network.version:
        return set()
    if subnet.prefixlen == length:
        first, last = span or _span(cfg)
        # cfg.contains, in integers: ipaddress's subnet_of made this most of an acquire among 1,000 leases
        return {subnet} if first <= int(subnet.network_address) <= last else set()
    if not subnet.overlaps(network):
        return set()
    if subnet.prefixlen > length:
        parent = subnet.supernet(new_prefix=length)
        return {parent} if cfg.contains(parent) else set()
    inner = subnet if subnet.subnet_of(network) else network  # type: ignore[arg-type]  # same version, checked
    return {s for s in inner.subnets(new_prefix=length) if cfg.contains(s)}


def blocked(cfg: ClusterConfig, live: Collection[AnyNetwork], history: Mapping[AnyNetwork, History],
            quarantine: float, now: float) -> tuple[set[AnyNetwork], int, float | None]:
    """Subnets of ``cfg`` others may not take: (blocked, how many quarantined, first free_at)."""
    span = _span(cfg)
    taken: set[AnyNetwork] = set()
    for subnet in live:
        taken.update(within(cfg, subnet, span))
    quarantined = 0
    first_free: float | None = None
    for subnet, hist in history.items():
        if subnet in live:
            continue
        free_at = hist.free_at(quarantine)
        if free_at is None or free_at > now:
            inside = within(cfg, subnet, span) - taken
            taken.update(inside)
            quarantined += len(inside)
            at = free_at if free_at is not None else now + quarantine
            first_free = at if first_free is None else min(first_free, at)
    return taken, quarantined, first_free


def _span(cfg: ClusterConfig) -> tuple[int, int]:
    """The network addresses of SubnetMin and SubnetMax as integers: a /SubnetLen between them is cfg's."""
    return int(cfg.first.network_address), int(cfg.last.network_address)


def may_take(cfg: ClusterConfig, live: Collection[AnyNetwork], history: Mapping[AnyNetwork, History],
             node: str, subnet: AnyNetwork, *, quarantine: float, now: float) -> bool:
    """True when ``node`` may claim ``subnet``: in the network, no live key on it, no other node's quarantine."""
    if subnet.prefixlen != cfg.lease_len or not cfg.contains(subnet):
        return False
    others = {s: h for s, h in history.items() if h.node != node}
    return subnet not in blocked(cfg, live, others, quarantine, now)[0]


def choose_subnet(cfg: ClusterConfig, live: Collection[AnyNetwork], history: Mapping[AnyNetwork, History],
                  node: str, *, quarantine: float, now: float, rng: random.Random | None = None,
                  prefer: AnyNetwork | None = None) -> AnyNetwork:
    """The subnet ``node`` should claim (see the module docstring); ``rng`` picks a random start."""
    if prefer is not None and may_take(cfg, live, history, node, prefer, quarantine=quarantine, now=now):
        return prefer
    own = [h for h in history.values() if h.node == node and h.subnet not in live and cfg.contains(h.subnet)]
    if own:
        return max(own, key=lambda h: h.acquired_at or 0.0).subnet
    taken, quarantined, first_free = blocked(cfg, live, history, quarantine, now)
    total = cfg.subnet_count
    if len(taken) >= total:
        msg = f"no free subnet left in {cfg.lease_network} ({len(taken)} of {total} leased or quarantined)"
        if quarantined and first_free is not None:
            msg += f"; {quarantined} quarantined, the first is free again in {max(0, first_free - now):.0f}s"
        raise NetworkFull(msg)
    size = cfg.subnet_size
    base = int(cfg.first.network_address)
    start = rng.randrange(total) if rng is not None else 0
    for step in range(total):
        candidate = cfg.subnet_at(base + ((start + step) % total) * size)
        if candidate not in taken:
            return candidate
    raise AssertionError("a free subnet was counted but not found")  # pragma: no cover
