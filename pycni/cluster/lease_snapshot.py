"""One read of the cluster config, the subnet leases and their histories, at one store revision.

``read_snapshot(kv, prefix, parse_config)`` lists three ranges in one ``KV.list_prefixes``
call: ``<prefix>/config``, ``history/`` and ``subnets/``. The Kubernetes objects (``k8s/``) and pod
endpoints (``endpoints/``) that share the prefix are never fetched: an acquire has no use for them,
and listing the whole prefix made it grow with the pods (an acquire among 1,000 leases took 139 ms
on etcd with no pods, 324 ms with 3,000 endpoint records).

``Snapshot.leases`` and ``Snapshot.history`` are mappings by subnet that decode a value when it
is first asked for: an acquire needs every subnet a live key blocks (keys only), the histories of
subnets that no live key holds (quarantine, the node's last subnet) and the node's own leases
(``leases_of``), not 2,000 decoded documents (decoding all was ~20 of ~90 ms of such an acquire).
A value that does not parse is logged once and left out, its key still in ``live``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from ipaddress import IPv4Network, IPv6Network
from typing import Generic, TypeVar

from pycni.cluster.config import ClusterConfig
from pycni.cluster.kv import KV, KeyValue
from pycni.cluster.lease import History, Lease, decode_history, decode_lease, subnet_from_key

__all__ = ["Snapshot", "read_snapshot"]

log = logging.getLogger("pycni.cluster")

Subnet = IPv4Network | IPv6Network
T = TypeVar("T")


class _Decoded(Mapping[Subnet, T], Generic[T]):
    """Stored values by subnet, decoded on first access; the ones that do not decode are absent."""

    def __init__(self, raw: Mapping[Subnet, KeyValue], decode: Callable[[KeyValue], T | None]) -> None:
        self._raw = raw
        self._decode = decode
        self._done: dict[Subnet, T | None] = {}

    def __getitem__(self, subnet: Subnet) -> T:
        if subnet not in self._done:
            self._done[subnet] = self._decode(self._raw[subnet])  # KeyError: no such key
        value = self._done[subnet]
        if value is None:
            raise KeyError(subnet)
        return value

    def __iter__(self) -> Iterator[Subnet]:
        return (subnet for subnet in self._raw if self.get(subnet) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class Snapshot:
    """What ``read_snapshot`` read: the config, every live key, and leases and histories decoded on demand."""

    def __init__(self, revision: int, config: ClusterConfig | None, live: dict[Subnet, KeyValue],
                 histories: dict[Subnet, KeyValue]) -> None:
        self.revision = revision
        self.config = config
        self.live = live  # every subnets/ key, parsable or not: each one blocks its subnet
        self.leases: Mapping[Subnet, Lease] = _Decoded(live, _lease_or_none)
        self.history: Mapping[Subnet, History] = _Decoded(histories, _history_or_none)
        self._histories = histories

    def leases_of(self, node: str) -> list[Lease]:
        """``node``'s live leases, in key order, decoding only values that can name it."""
        forms = _name_forms(node)
        return [lease for subnet, kv in self.live.items()
                if any(form in kv.value for form in forms)
                and (lease := self.leases.get(subnet)) is not None and lease.node == node]

    def idle_history(self) -> dict[Subnet, History]:
        """The histories of subnets no live key holds: all that quarantine and a node's last subnet weigh."""
        return {subnet: hist for subnet in self._histories
                if subnet not in self.live and (hist := self.history.get(subnet)) is not None}


def read_snapshot(kv: KV, prefix: str, parse_config: Callable[[KeyValue], ClusterConfig]) -> Snapshot:
    """Config, ``history/`` and ``subnets/`` under ``prefix`` at one revision (``parse_config`` may raise)."""
    config_key = f"{prefix}/config"
    (configs, histories, subnets), revision = kv.list_prefixes(
        [config_key, f"{prefix}/history/", f"{prefix}/subnets/"])
    config = next((parse_config(item) for item in configs if item.key == config_key), None)
    return Snapshot(revision, config, _by_subnet(subnets, "subnet"), _by_subnet(histories, "history"))


def _by_subnet(kvs: list[KeyValue], what: str) -> dict[Subnet, KeyValue]:
    out: dict[Subnet, KeyValue] = {}
    for item in kvs:
        try:
            out[subnet_from_key(item.key)] = item
        except ValueError:
            log.warning("ignoring key %s: not a %s", item.key, what)
    return out


def _name_forms(node: str) -> tuple[bytes, ...]:
    """How ``node`` can appear in a stored JSON value: as UTF-8, or ASCII-escaped (lease.encode's way)."""
    escaped = json.dumps(node)[1:-1].encode()
    raw = node.encode()
    return (raw,) if raw == escaped else (raw, escaped)


def _lease_or_none(kv: KeyValue) -> Lease | None:
    try:
        return decode_lease(kv)
    except ValueError as exc:
        log.warning("subnet %s is held by a lease that does not parse: %s", kv.key.rsplit("/", 1)[-1], exc)
        return None


def _history_or_none(kv: KeyValue) -> History | None:
    try:
        return decode_history(kv)
    except (ValueError, UnicodeDecodeError) as exc:
        log.warning("ignoring unreadable history %s: %s", kv.key, exc)
        return None
