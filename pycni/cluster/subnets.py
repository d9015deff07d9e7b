"""Subnet leases in the store: which node owns which piece of the pod network.

``SubnetManager`` runs the domain transactions over the ``KV`` seam (kv.py), so it runs against
``MemoryKV`` in unit tests and ``EtcdKV`` in production. The key layout and the values are lease.py's;
which subnet a node gets is allocation.py's choice; following changes is watch_loop.py's.

How a node gets a subnet (``acquire``), in order:

1. its own live lease, taken over with a fresh etcd lease (the agent restarted within the TTL);
2. otherwise the subnet ``allocation.choose_subnet`` picks: the one asked for (``prefer``, where the
   node's pods are), else the node's last one, else a free one (after a lost race, from a random start).

Every claim is one transaction: "subnets/S is absent and history/S is unchanged since I read it"
then write both. Two nodes can never hold one subnet, whatever the timing, and the history always
names the holder.

Expiry is noticed, not announced: etcd deletes subnets/S when the TTL passes. The first manager that
finds history/S without ExpiredAt while subnets/S is absent stamps ExpiredAt with its clock (again
one transaction): ``acquire`` does it on any node, ``note_expiry`` on every node whose lease watch
sees the delete (a random 0.1-1 s later, off the watch's path; the first one wins, the others find it
stamped). So quarantine lasts at least ``quarantine`` seconds, counted from when the expiry was
noticed (about a second after it); nodes' clock skew shifts it by the skew. Its length is the
config's ``Quarantine`` when set (one value for the whole cluster), else the manager's ``quarantine``.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any, Literal

from pycni.cluster.allocation import choose_subnet
from pycni.cluster.config import AnyNetwork, ClusterConfig, subnet_key_name
from pycni.cluster.kv import KV, KeyValue, KVError, LeaseExpired, Put
from pycni.cluster.lease import (
    DEFAULT_PREFIX,
    ClusterNotInitialized,
    History,
    Lease,
    LeaseLost,
    LeaseV6,
    SubnetState,
    V6Attrs,
    decode_history,
    decode_lease,
    encode,
    history_value,
    lease_value,
    normalize_prefix,
    v6_side,
)
from pycni.cluster.lease_snapshot import Snapshot as _Snapshot
from pycni.cluster.lease_snapshot import read_snapshot
from pycni.spec.errors import InvalidConfig, TryAgainLater

__all__ = ["SubnetManager"]

log = logging.getLogger("pycni.cluster")

_MAX_ATTEMPTS = 100


class SubnetManager:
    """Acquire, renew, release and list subnet leases under one prefix of a KV store."""

    def __init__(
        self,
        kv: KV,
        prefix: str = DEFAULT_PREFIX,
        *,
        ttl: int = 30,
        quarantine: float = 300.0,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        if ttl < 2:
            raise InvalidConfig(f"lease TTL: {ttl}s is too short (at least 2s)")
        if quarantine < 0:
            raise InvalidConfig("quarantine: must not be negative")
        self.kv = kv
        self.prefix = normalize_prefix(prefix)
        self.ttl = ttl
        self.default_quarantine = quarantine
        self.quarantine = quarantine  # the config's Quarantine once one is read
        self._clock = clock
        self._rng = rng or random.Random()

    # -- keys --------------------------------------------------------------------------

    @property
    def config_key(self) -> str:
        return f"{self.prefix}/config"

    @property
    def subnets_prefix(self) -> str:
        return f"{self.prefix}/subnets/"

    @property
    def history_prefix(self) -> str:
        return f"{self.prefix}/history/"

    def subnet_key(self, subnet: AnyNetwork) -> str:
        return self.subnets_prefix + subnet_key_name(subnet)

    def history_key(self, subnet: AnyNetwork) -> str:
        return self.history_prefix + subnet_key_name(subnet)

    # -- config ---------------------------------------------------------------------------

    def load_config(self) -> ClusterConfig:
        kv = self.kv.get(self.config_key)
        if kv is None:
            raise ClusterNotInitialized(
                f"no cluster config at {self.config_key}; run 'pycni cluster init' first"
            )
        cfg = self._parse_config(kv)
        self._use(cfg)
        return cfg

    def init_config(self, cfg: ClusterConfig, *, force: bool = False) -> None:
        """Store ``cfg``. The same config again is fine; a different one needs ``force``, and even
        then every live lease must still fit (no shrinking under running nodes)."""
        value = encode(cfg.to_wire())
        for _ in range(_MAX_ATTEMPTS):
            current = self.kv.get(self.config_key)
            if current is None:
                if self.kv.create(self.config_key, value):
                    return
                continue
            try:
                existing: ClusterConfig | None = self._parse_config(current)
            except InvalidConfig:
                existing = None  # unreadable: replacing it is what --force is for
            if existing == cfg:
                return
            if not force:
                shown = existing.describe() if existing else "an unreadable document"
                raise InvalidConfig(
                    f"a different cluster config exists at {self.config_key} ({shown}); "
                    "pass --force to replace it"
                )
            outside = [lease for lease in self.list_leases()[0] if not cfg.contains(lease.subnet)]
            if outside:
                names = ", ".join(f"{lease.node} {lease.subnet}" for lease in outside[:5])
                more = f" and {len(outside) - 5} more" if len(outside) > 5 else ""
                raise InvalidConfig(
                    f"refusing to change the network: live leases fall outside the new one ({names}{more}); "
                    "remove those nodes first ('pycni node remove NAME')"
                )
            if self.kv.update(self.config_key, value, current.mod_revision):
                return
        raise TryAgainLater(f"the cluster config at {self.config_key} keeps changing; try again")

    def _parse_config(self, kv: KeyValue) -> ClusterConfig:
        try:
            data = json.loads(kv.value)
        except (ValueError, UnicodeDecodeError):
            raise InvalidConfig(f"cluster config at {self.config_key} is not JSON") from None
        try:
            return ClusterConfig.from_wire(data)
        except InvalidConfig as exc:
            raise InvalidConfig(f"cluster config at {self.config_key}: {exc.msg}") from None

    # -- leases ------------------------------------------------------------------------

    def acquire(self, node: str, public_ip: IPv4Address | IPv6Address, backend_data: Mapping[str, Any], *,
                prefer: AnyNetwork | None = None, v6: V6Attrs | None = None) -> Lease:
        """A subnet for ``node``: its current one, ``prefer``, its last one, or a free one (module doc).

        Raises ``NetworkFull`` when every subnet is leased or quarantined, ``ClusterNotInitialized``
        without a config, ``KVUnavailable`` when the store cannot be reached. With EnableIPv6 the lease
        carries the paired IPv6 subnet and ``v6`` (the node's IPv6 underlay address and backend data).
        """
        _check_node(node)
        public_ip = ip_address(public_ip)
        data = dict(backend_data)
        encode(data)  # fails early on values that are not JSON
        lease_id = 0
        collided = False
        try:
            for _ in range(_MAX_ATTEMPTS):
                snap = self._read()
                cfg = self._config_of(snap)
                cfg.check_public_ip(node, public_ip)
                now = self._clock()
                if self._stamp_expiries(snap, now):
                    continue  # histories changed: read them again
                mine = snap.leases_of(node)
                current = next((lease for lease in mine if cfg.contains(lease.subnet)), None)
                if current is not None:
                    side = v6_side(cfg, current.subnet, v6)
                    value = lease_value(node, public_ip, cfg.backend.type, data, side)
                    lease_id = lease_id or self.kv.grant_lease(self.ttl)
                    revision = self._take_over(snap, current, value, node, public_ip, lease_id, now)
                    if revision:
                        self._end_lease(current.lease_id, keep=lease_id)
                        log.info("node %s keeps its subnet %s", node, current.subnet)
                        return self._made(node, current.subnet, public_ip, cfg, data, revision, lease_id, now, side)
                    continue
                idle = snap.idle_history()
                subnet = choose_subnet(cfg, snap.live, idle, node, quarantine=self.quarantine, now=now,
                                       rng=self._rng if collided else None, prefer=prefer)
                side = v6_side(cfg, subnet, v6)
                value = lease_value(node, public_ip, cfg.backend.type, data, side)
                lease_id = lease_id or self.kv.grant_lease(self.ttl)
                try:
                    revision = self._claim(snap, subnet, value, node, public_ip, lease_id, now)
                except LeaseExpired:  # the contention outlasted the TTL of the lease granted for it
                    lease_id = 0
                    continue
                if revision:
                    log.info("node %s leased subnet %s", node, subnet)
                    return self._made(node, subnet, public_ip, cfg, data, revision, lease_id, now, side)
                collided = True
            raise TryAgainLater(f"could not lease a subnet for {node}: {_MAX_ATTEMPTS} attempts lost races")
        except BaseException:
            if lease_id:
                self._end_lease(lease_id)
            raise

    def renew(self, lease: Lease) -> Lease:
        """Keep ``lease`` alive. If it expired meanwhile, take the same subnet again when no one else
        may have it (``LeaseLost`` otherwise: the agent must ``acquire`` a new subnet)."""
        key = lease.key or self.subnet_key(lease.subnet)
        try:
            ttl = self.kv.keepalive(lease.lease_id)
        except LeaseExpired:
            log.warning("lease of node %s on %s expired; taking the subnet again", lease.node, lease.subnet)
            return self._reclaim(lease)
        current = self.kv.get(key)
        if current is None:
            log.warning("lease key of node %s on %s vanished; taking the subnet again", lease.node, lease.subnet)
            self._end_lease(lease.lease_id)
            return self._reclaim(lease)
        if current.lease != lease.lease_id:
            holder = _holder(current)
            self._end_lease(lease.lease_id)
            raise LeaseLost(_lost_message(lease, holder))
        return replace(lease, expires_at=self._clock() + ttl, mod_revision=current.mod_revision)

    def release(self, node: str) -> bool:
        """Give up ``node``'s lease (``pycni node remove``): its subnet is free for others at once,
        quarantined or not. True when there was anything to release."""
        _check_node(node)
        changed = False
        for _ in range(_MAX_ATTEMPTS):
            snap = self._read()
            now = self._clock()
            conflict = False
            for lease in sorted(snap.leases_of(node), key=lambda lease: lease.subnet):
                subnet = lease.subnet
                hist = snap.history.get(subnet)
                value = history_value(node, str(lease.public_ip), hist.acquired_at if hist else None,
                                            now, released=True)
                ok = self.kv.txn(
                    [(lease.key, lease.mod_revision), (self.history_key(subnet), hist.mod_revision if hist else 0)],
                    [Put(self.history_key(subnet), value)],
                    [lease.key],
                )
                if not ok:
                    conflict = True
                    break
                self._end_lease(lease.lease_id)
                changed = True
                log.info("released subnet %s of node %s", subnet, node)
            if conflict:
                continue
            for subnet, hist in sorted(snap.idle_history().items()):
                if hist.node != node or hist.released:
                    continue
                value = history_value(node, hist.public_ip, hist.acquired_at, hist.expired_at or now,
                                            released=True)
                if not self.kv.txn([(self.subnet_key(subnet), 0), (self.history_key(subnet), hist.mod_revision)],
                                   [Put(self.history_key(subnet), value)]):
                    conflict = True
                    break
                changed = True
                log.info("ended the quarantine of subnet %s (last held by %s)", subnet, node)
            if not conflict:
                return changed
        raise TryAgainLater(f"could not release node {node}: its lease keeps changing")

    def list_leases(self, *, with_ttl: bool = False) -> tuple[list[Lease], int]:
        """Live leases in subnet order, and the store revision to watch from (``revision + 1``).

        ``with_ttl`` asks the store for each lease's remaining time (one request per lease) to fill
        ``expires_at``. Keys that do not parse are left out (and logged)."""
        kvs, revision = self.kv.list_prefix(self.subnets_prefix)
        leases = []
        for kv in kvs:
            try:
                lease = decode_lease(kv)
            except ValueError as exc:
                log.warning("ignoring %s", exc)
                continue
            if with_ttl and lease.lease_id:
                ttl = self.kv.time_to_live(lease.lease_id)
                lease = replace(lease, expires_at=self._clock() + ttl if ttl >= 0 else None)
            leases.append(lease)
        leases.sort(key=lambda lease: lease.subnet)
        return leases, revision

    def subnet_states(self) -> tuple[ClusterConfig, list[SubnetState]]:
        """Every subnet that is leased or quarantined, or holds a history (for ``cluster show``)."""
        snap = self._read()
        cfg = self._config_of(snap)
        now = self._clock()
        states = []
        for subnet in sorted(set(snap.live) | set(snap.history)):
            lease, hist = snap.leases.get(subnet), snap.history.get(subnet)
            if subnet in snap.live:
                if lease is not None and lease.lease_id:
                    ttl = self.kv.time_to_live(lease.lease_id)
                    lease = replace(lease, expires_at=now + ttl if ttl >= 0 else None)
                states.append(SubnetState(subnet, "leased", lease, hist, None))
            elif hist is not None:
                free_at = hist.free_at(self.quarantine)
                status: Literal["quarantined", "free"] = "free" if free_at is not None and free_at <= now else (
                    "quarantined")
                states.append(SubnetState(subnet, status, None, hist, free_at))
        return cfg, states

    def note_expiry(self, lease: Lease) -> None:
        """Stamp ExpiredAt on the history of a subnet whose lease just went away (best effort: the
        lease watch calls it on every node that sees the delete; the first one wins)."""
        try:
            current = self.kv.get(self.history_key(lease.subnet))
            if current is None:
                return
            hist = decode_history(current)
            if hist.node == lease.node and hist.expired_at is None and not hist.released:
                self._stamp(hist, self._clock())
        except (KVError, ValueError) as exc:
            log.debug("could not note the expiry of %s: %s", lease.subnet, exc)

    # -- internals ----------------------------------------------------------------------

    def _read(self) -> _Snapshot:
        def parse_config(kv: KeyValue) -> ClusterConfig:
            try:
                return self._parse_config(kv)
            except InvalidConfig as exc:
                raise InvalidConfig(f"{exc.msg}; fix it with 'pycni cluster init --force'") from None

        return read_snapshot(self.kv, self.prefix, parse_config)

    def _config_of(self, snap: _Snapshot) -> ClusterConfig:
        if snap.config is None:
            raise ClusterNotInitialized(f"no cluster config at {self.config_key}; run 'pycni cluster init' first")
        self._use(snap.config)
        return snap.config

    def _use(self, cfg: ClusterConfig) -> None:
        self.quarantine = float(cfg.quarantine) if cfg.quarantine is not None else self.default_quarantine

    def _stamp_expiries(self, snap: _Snapshot, now: float) -> bool:
        stamped = False
        for hist in snap.idle_history().values():
            if hist.expired_at is None and not hist.released:
                self._stamp(hist, now)
                stamped = True
        return stamped

    def _stamp(self, hist: History, now: float) -> None:
        value = history_value(hist.node, hist.public_ip, hist.acquired_at, now, released=False)
        if self.kv.txn([(self.subnet_key(hist.subnet), 0), (self.history_key(hist.subnet), hist.mod_revision)],
                       [Put(self.history_key(hist.subnet), value)]):
            log.info("lease of node %s on %s expired; quarantined for %.0fs", hist.node, hist.subnet,
                     self.quarantine)

    def _claim(self, snap: _Snapshot, subnet: AnyNetwork, value: bytes, node: str, public_ip: IPv4Address | IPv6Address,
               lease_id: int, now: float) -> int:
        hist = snap.history.get(subnet)
        return self.kv.txn(
            [(self.subnet_key(subnet), 0), (self.history_key(subnet), hist.mod_revision if hist else 0)],
            [Put(self.subnet_key(subnet), value, lease_id),
             Put(self.history_key(subnet), history_value(node, str(public_ip), now, None, released=False))],
        )

    def _take_over(self, snap: _Snapshot, current: Lease, value: bytes, node: str, public_ip: IPv4Address | IPv6Address,
                   lease_id: int, now: float) -> int:
        hist = snap.history.get(current.subnet)
        acquired = hist.acquired_at if hist and hist.node == node and hist.acquired_at is not None else now
        return self.kv.txn(
            [(current.key, current.mod_revision), (self.history_key(current.subnet), hist.mod_revision if hist else 0)],
            [Put(current.key, value, lease_id),
             Put(self.history_key(current.subnet),
                 history_value(node, str(public_ip), acquired, None, released=False))],
        )

    def _reclaim(self, lease: Lease) -> Lease:
        lease_id = 0
        try:
            for _ in range(_MAX_ATTEMPTS):
                snap = self._read()
                cfg = self._config_of(snap)
                now = self._clock()
                live = snap.live.get(lease.subnet)
                if live is not None and live.lease == lease.lease_id and _holder(live) == lease.node:
                    # etcd says the lease expired but has not deleted its key yet: move it to a new lease
                    current = decode_lease(live)
                    lease_id = lease_id or self.kv.grant_lease(self.ttl)
                    value = lease_value(lease.node, lease.public_ip, lease.backend_type, lease.backend_data, lease.v6)
                    revision = self._take_over(snap, current, value, lease.node, lease.public_ip, lease_id, now)
                    if revision:
                        return replace(lease, expires_at=now + self.ttl, mod_revision=revision, lease_id=lease_id)
                    continue
                if live is not None:
                    raise LeaseLost(_lost_message(lease, _holder(live)))
                if not cfg.contains(lease.subnet):
                    raise LeaseLost(f"subnet {lease.subnet} of node {lease.node} is no longer part of the "
                                    f"network ({cfg.describe()})")
                hist = snap.history.get(lease.subnet)
                if hist is not None and hist.node != lease.node:
                    free_at = hist.free_at(self.quarantine)
                    if free_at is None or free_at > now:
                        raise LeaseLost(f"subnet {lease.subnet} of node {lease.node} was last held by {hist.node} "
                                        "and is quarantined")
                value = lease_value(lease.node, lease.public_ip, lease.backend_type, lease.backend_data, lease.v6)
                lease_id = lease_id or self.kv.grant_lease(self.ttl)
                revision = self._claim(snap, lease.subnet, value, lease.node, lease.public_ip, lease_id, now)
                if revision:
                    log.info("node %s took its subnet %s again", lease.node, lease.subnet)
                    return replace(lease, expires_at=now + self.ttl, mod_revision=revision, lease_id=lease_id,
                                   key=self.subnet_key(lease.subnet))
            raise TryAgainLater(f"could not take subnet {lease.subnet} again: {_MAX_ATTEMPTS} attempts lost races")
        except BaseException:
            if lease_id:
                self._end_lease(lease_id)
            raise

    def _made(self, node: str, subnet: AnyNetwork, public_ip: IPv4Address | IPv6Address, cfg: ClusterConfig,
              data: Mapping[str, Any], revision: int, lease_id: int, now: float, v6: LeaseV6 | None) -> Lease:
        return Lease(node, subnet, public_ip, cfg.backend.type, data, now + self.ttl, self.subnet_key(subnet),
                     revision, lease_id, v6)

    def _end_lease(self, lease_id: int, *, keep: int = 0) -> None:
        if not lease_id or lease_id == keep:
            return
        try:
            self.kv.revoke(lease_id)
        except KVError as exc:  # it expires by itself anyway
            log.debug("could not revoke lease %x: %s", lease_id, exc)


def _holder(kv: KeyValue) -> str:
    try:
        return decode_lease(kv).node
    except ValueError:
        return "an unreadable lease"


def _lost_message(lease: Lease, holder: str) -> str:
    if holder == lease.node:
        return (f"subnet {lease.subnet} of node {lease.node} was taken over by another agent with the same node "
                "name")
    return f"subnet {lease.subnet} of node {lease.node} is now held by {holder}"


def _check_node(node: str) -> None:
    if not isinstance(node, str) or not node or len(node) > 253 or any(c.isspace() or c in "/\\\"" for c in node):
        raise InvalidConfig(f"node name: {node!r} is not valid (1-253 characters, no spaces, slashes or quotes)")
