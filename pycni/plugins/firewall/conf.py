"""firewall's configuration (pure; the backend probe is passed in).

Keys (matched like Go's encoding/json: exact, then case-insensitively):

- ``backend``: ``iptables`` | ``nftables``. Unset or "" (podman writes
  ``"backend": ""``): iptables when the iptables tool works on this host,
  else nftables. The reference's default is firewalld when D-Bus has it,
  else iptables; pycni has no firewalld backend, and iptables is the
  drop-in choice (its rules sit in the FORWARD chain where a drop policy
  lives, see rules.py). ``firewalld`` is refused with a clear message.
- ``iptablesAdminChainName``: default ``CNI-ADMIN`` (iptables only).
- ``ingressPolicy``: ``open`` (or "": nothing), ``same-bridge`` (traffic
  forwarded between two bridges that both have a same-bridge or isolated
  policy is dropped), ``isolated`` (also between the ports of the bridge).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pycni.spec.errors import InvalidConfig
from pycni.spec.fields import read_str

__all__ = ["BACKENDS", "DEFAULT_ADMIN_CHAIN", "INGRESS_POLICIES", "FirewallConf", "parse_conf"]

BACKENDS = ("iptables", "nftables")
INGRESS_POLICIES = ("open", "same-bridge", "isolated")
DEFAULT_ADMIN_CHAIN = "CNI-ADMIN"
_RESERVED_CHAINS = frozenset(
    {
        "INPUT",
        "OUTPUT",
        "FORWARD",
        "PREROUTING",
        "POSTROUTING",
        "CNI-FORWARD",
        "CNI-ISOLATION-STAGE-1",
        "CNI-ISOLATION-STAGE-2",
        "ACCEPT",
        "DROP",
        "RETURN",
        "REJECT",
        "QUEUE",
    }
)
_CHAIN_NAME = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.\-]{0,27}$")


@dataclass(frozen=True)
class FirewallConf:
    backend: str
    admin_chain: str = DEFAULT_ADMIN_CHAIN
    ingress_policy: str = "open"


def parse_conf(config: Mapping[str, Any], *, iptables_usable: Callable[[], bool]) -> FirewallConf:
    backend = read_str(config, "backend", "")
    if backend == "firewalld":
        raise InvalidConfig("backend: 'firewalld' is not supported by pycni; use 'iptables' or 'nftables'")
    if backend and backend not in BACKENDS:
        raise InvalidConfig(f"backend: {backend!r} is not one of 'iptables', 'nftables'")
    if not backend:
        backend = "iptables" if iptables_usable() else "nftables"

    admin = read_str(config, "iptablesAdminChainName", "") or DEFAULT_ADMIN_CHAIN
    if not _CHAIN_NAME.match(admin):
        raise InvalidConfig(
            f"iptablesAdminChainName: {admin!r} is not an iptables chain name (1-28 letters, digits, '_', '.', '-')"
        )
    if admin.upper() in _RESERVED_CHAINS:
        raise InvalidConfig(f"iptablesAdminChainName: {admin!r} is a built-in chain or target, or one of the plugin's")

    policy = read_str(config, "ingressPolicy", "") or "open"
    if policy not in INGRESS_POLICIES:
        raise InvalidConfig(f"ingressPolicy: {policy!r} is not one of 'open', 'same-bridge', 'isolated'")
    return FirewallConf(backend=backend, admin_chain=admin, ingress_policy=policy)
