"""The node's own lease as the wireguard backend sees it: the key it publishes, and rotation requests.

The lease (``<prefix>/subnets/<subnet>``, JSON ``{"Node", "PublicIP",
"BackendType", "BackendData"}``) carries ``BackendData.PublicKey`` and
``Port``. Two things change it besides the lease keeper:

- ``pycni node rotate-key NODE`` adds ``BackendData.RotateKey`` (a nonce,
  ``request_rotation``); the node's agent sees it on its next converge,
  makes a new key, puts it in its device, then publishes the new public key
  and drops the request (``publish``) in one compare-and-swap;
- whenever the published key is not the device's (a lease taken again with
  old data after a long datastore outage, a hand edit), ``publish`` fixes it:
  peers must always hold the key the device has.

Both writes keep the etcd lease the key is attached to, so the lease keeper's
renewals go on untouched. This module reads and writes raw JSON so it does
not import ``cluster.lease`` (which imports the config, which imports the
backends' config modules).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Network
from typing import Any

from pycni.cluster.kv import KV, KeyValue

__all__ = ["ROTATE_FIELD", "LeaseAccess", "OwnLease", "publish", "read_own", "request_rotation"]

ROTATE_FIELD = "RotateKey"


@dataclass(frozen=True)
class LeaseAccess:
    """How the backend reaches its lease: the store and the key of a subnet's lease."""

    kv: KV
    key_of: Callable[[IPv4Network], str]


@dataclass(frozen=True)
class OwnLease:
    entry: KeyValue
    value: dict[str, Any]

    @property
    def backend_data(self) -> dict[str, Any]:
        data = self.value.get("BackendData")
        return dict(data) if isinstance(data, Mapping) else {}

    @property
    def rotation(self) -> str | None:
        nonce = self.backend_data.get(ROTATE_FIELD)
        return str(nonce) if nonce else None

    def publishes(self, backend_data: Mapping[str, Any]) -> bool:
        have = self.backend_data
        return self.rotation is None and all(have.get(k) == v for k, v in backend_data.items())


def _encode(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def read_own(access: LeaseAccess, subnet: IPv4Network) -> OwnLease | None:
    entry = access.kv.get(access.key_of(subnet))
    if entry is None:
        return None
    try:
        value = json.loads(entry.value)
    except ValueError:
        return None
    return OwnLease(entry, value) if isinstance(value, dict) else None


def publish(access: LeaseAccess, own: OwnLease, backend_data: Mapping[str, Any]) -> bool:
    """Write ``backend_data`` into the lease (other fields kept, a rotation request dropped); False if it moved."""
    data = own.backend_data
    data.update(backend_data)
    data.pop(ROTATE_FIELD, None)
    value = dict(own.value, BackendData=data)
    return access.kv.update(own.entry.key, _encode(value), own.entry.mod_revision, lease=own.entry.lease)


def request_rotation(kv: KV, key: str) -> str:
    """Ask the agent holding the lease at ``key`` for a new key; returns the request's nonce.

    Raises ``LookupError`` when there is no lease there, ``ValueError`` when it is not a wireguard lease,
    ``RuntimeError`` when it kept changing.
    """
    for _ in range(10):
        entry = kv.get(key)
        if entry is None:
            raise LookupError(key)
        value = json.loads(entry.value)
        if value.get("BackendType") != "wireguard":
            raise ValueError(f"backend '{value.get('BackendType')}'")
        nonce = os.urandom(8).hex()
        data = dict(value.get("BackendData") or {}, **{ROTATE_FIELD: nonce})
        if kv.update(key, _encode(dict(value, BackendData=data)), entry.mod_revision, lease=entry.lease):
            return nonce
    raise RuntimeError(f"lease {key} kept changing")
