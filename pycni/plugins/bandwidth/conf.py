"""The bandwidth plugin's configuration: rates and bursts per direction. Pure.

Sources, per direction (ingress = traffic into the container, egress =
traffic out of it):

- the config's top-level ``ingressRate``/``ingressBurst``/``egressRate``/
  ``egressBurst`` (rates in bits/s, bursts in bits);
- ``runtimeConfig.bandwidth`` (the ``bandwidth`` capability) with the same
  keys. It overrides the config for every direction it sets (nonzero rate
  or burst), so a network can carry a default that a pod's annotation
  replaces; a direction it leaves at zero keeps the config's values.
  (The reference plugin does the opposite: any top-level value makes it
  ignore ``runtimeConfig`` entirely.)

Each source is validated on its own, so an error names the exact key:
rate and burst come together, a rate is at least 8 bits/s (one byte) and
at most what the kernel's TBF can hold (2^32-1 bytes/s), a burst is at
least 8 bits and below 4 GB (the reference's limit). ``unshapedSubnets``/
``shapedSubnets`` are ignored, as in the reference: the plugins release
that introduced them (HTB instead of TBF) had them reverted
(containernetworking/plugins#1105) and cni.dev never documented them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pycni.net.tc import MAX_TBF_RATE_BITS
from pycni.spec.errors import InvalidConfig
from pycni.spec.fields import join, read_object, read_uint
from pycni.spec.validate import IFNAME_MAX_BYTES

__all__ = ["BandwidthConf", "Limit", "ifb_name", "parse_conf"]

#: The reference rejects bursts whose byte count does not fit below a u32.
MAX_BURST_BITS = 0xFFFFFFFF * 8 - 1
_IFB_PREFIX = "bwp"


@dataclass(frozen=True)
class Limit:
    """One direction's shaping: rate in bits/s, burst in bits."""

    rate: int
    burst: int


@dataclass(frozen=True)
class BandwidthConf:
    ingress: Limit | None  # traffic into the container: TBF on the host veth
    egress: Limit | None  # traffic out of the container: TBF on an ifb

    @property
    def is_zero(self) -> bool:
        return self.ingress is None and self.egress is None


def _read_direction(obj: Mapping[str, Any], base: str, direction: str) -> Limit | None:
    rate_key, burst_key = f"{direction}Rate", f"{direction}Burst"
    rate = read_uint(obj, rate_key, base) or 0
    burst = read_uint(obj, burst_key, base) or 0
    rate_path, burst_path = join(base, rate_key), join(base, burst_key)
    if rate == 0 and burst == 0:
        return None
    if burst == 0:
        raise InvalidConfig(f"{burst_path}: must be set (to bits > 0) when {rate_path} is set")
    if rate == 0:
        raise InvalidConfig(f"{rate_path}: must be set (to bits/s > 0) when {burst_path} is set")
    if rate < 8:
        raise InvalidConfig(f"{rate_path}: {rate} bits/s is less than one byte per second (the smallest rate is 8)")
    if rate > MAX_TBF_RATE_BITS:
        raise InvalidConfig(f"{rate_path}: {rate} bits/s is more than the kernel's TBF supports ({MAX_TBF_RATE_BITS})")
    if burst < 8:
        raise InvalidConfig(f"{burst_path}: {burst} bits is less than one byte (the smallest burst is 8)")
    if burst > MAX_BURST_BITS:
        raise InvalidConfig(f"{burst_path}: burst cannot be more than 4GB (got {burst} bits)")
    return Limit(rate=rate, burst=burst)


def parse_conf(config: Mapping[str, Any]) -> BandwidthConf:
    """Validate both sources and merge them (runtimeConfig wins per direction)."""
    ingress = _read_direction(config, "", "ingress")
    egress = _read_direction(config, "", "egress")
    runtime = read_object(config, "runtimeConfig", "")
    capability = read_object(runtime, "bandwidth", "runtimeConfig") if runtime is not None else None
    if capability is not None:
        ingress = _read_direction(capability, "runtimeConfig.bandwidth", "ingress") or ingress
        egress = _read_direction(capability, "runtimeConfig.bandwidth", "egress") or egress
    return BandwidthConf(ingress=ingress, egress=egress)


def ifb_name(network: str, container_id: str, ifname: str) -> str:
    """The attachment's ifb: "bwp" + 12 hex digits of a hash of network, container ID and ifname.

    Deterministic, so DEL finds it without state. Unlike the reference
    (network + container ID only) the ifname is part of the hash: two
    attachments of one container to one network get two ifbs.
    """
    digest = hashlib.sha512(f"{network}\0{container_id}\0{ifname}".encode()).hexdigest()
    return _IFB_PREFIX + digest[: IFNAME_MAX_BYTES - len(_IFB_PREFIX)]
