"""What the agent adds for a dual-stack cluster: the refusal of IPv4-only backends, the lease's IPv6 side.

Pure. ``dual_stack_refusal(config)`` is the one line the agent logs (and
exits 2) when the config enables IPv6 (dual stack or IPv6-only) on a backend
that only carries IPv4 (wireguard, bgp); None otherwise.
``lease_v6_attrs(config, underlay, backend)`` is what the node publishes in the IPv6 side of its lease: its
IPv6 underlay address and the backend's ``backend_v6_data()`` (None for an
IPv4-only cluster, so the lease is written exactly as before).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pycni.cluster.config_v6 import refuse_dual_stack
from pycni.cluster.lease import V6Attrs

if TYPE_CHECKING:
    from pycni.cluster.backends.base import Backend, Underlay
    from pycni.cluster.config import ClusterConfig

__all__ = ["dual_stack_refusal", "lease_v6_attrs"]


def dual_stack_refusal(config: ClusterConfig) -> str | None:
    if config.ipv6 is None:
        return None
    reason = refuse_dual_stack(config.backend.type, ipv6_only=config.network is None)
    return None if reason is None else f"refusing to start: {reason}"


def lease_v6_attrs(config: ClusterConfig, underlay: Underlay, backend: Backend) -> V6Attrs | None:
    if config.ipv6 is None:
        return None
    data = getattr(backend, "backend_v6_data", None)
    return V6Attrs(underlay.ipv6, data() if data is not None else {})
