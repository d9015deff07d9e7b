"""A SubnetManager on the in-memory KV with a hand-driven clock, for the unit tests of leases and watches."""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from pycni.cluster.config import ClusterConfig
from pycni.cluster.subnets import SubnetManager
from pycni.testing.kv import MemoryKV

TTL = 10
QUARANTINE = 60.0


def ip(n: int) -> IPv4Address:
    return IPv4Address(f"192.0.2.{n}")


def config(network: str = "10.244.0.0/16", **kw: Any) -> ClusterConfig:
    return ClusterConfig(network=IPv4Network(network), **kw)


def memory_kv() -> Iterator[MemoryKV]:
    """The body of a ``kv`` fixture: a store whose clock starts at 1000 s, closed afterwards."""
    store = MemoryKV(start=1000.0)
    yield store
    store.close()


def manager(kv: MemoryKV, cfg: ClusterConfig | None = None, **kw: Any) -> SubnetManager:
    sm = SubnetManager(kv, ttl=TTL, quarantine=QUARANTINE, clock=kv.now, **kw)
    if cfg is not None:
        sm.init_config(cfg)
    return sm
