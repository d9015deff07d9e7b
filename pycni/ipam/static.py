"""The static IPAM plugin: fixed addresses, routes and DNS; no state.

Contract:

- Addresses come from, later sources replacing earlier ones:
  ``ipam.addresses`` (each ``{"address": CIDR, "gateway"?: IP}``) plus
  CNI_ARGS ``IP=`` (a comma list of CIDRs, appended) → ``args.cni.ips``
  → ``runtimeConfig.ips`` (capability ``ips``). Every address needs a
  prefix. CNI_ARGS ``GATEWAY=`` (a comma list) sets the gateway of each
  address, from ``ipam.addresses`` or ``IP=``, whose subnet contains it.
  Addresses from ``args``/``runtimeConfig`` carry no gateway.
- Config versions before 0.3.0 allow one address per family.
- ADD returns ``ips`` (address, gateway), ``ipam.routes`` and ``ipam.dns``.
- DEL does nothing (nothing was allocated). STATUS and GC succeed.
- CHECK needs ``prevResult``: every configured address must be in it, with
  the configured gateway when one is set. (The reference only compares the
  gateways of addresses it finds; a missing address is an error here.)

Deviation: the reference applies ``GATEWAY=`` only to ``IP=`` addresses,
because it parses ``ipam.addresses`` later; here it applies to both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pycni import skel
from pycni.spec.args import CniArgs
from pycni.spec.errors import CniError, InvalidConfig
from pycni.spec.fields import (
    IPAddress,
    IPInterface,
    check_one_address_per_family,
    lookup,
    parse_address,
    parse_cidr_address,
    parse_dns,
    parse_routes,
    read_list,
    read_object,
    read_str,
)
from pycni.spec.result import DNS, IPConfig, Result, Route

__all__ = ["StaticAddress", "StaticConfig", "cmd_add", "cmd_check", "cmd_del", "parse_config"]


@dataclass(frozen=True)
class StaticAddress:
    address: IPInterface
    gateway: IPAddress | None = None


@dataclass(frozen=True)
class StaticConfig:
    cni_version: str
    addresses: tuple[StaticAddress, ...] = ()
    routes: tuple[Route, ...] = ()
    dns: DNS = field(default_factory=DNS)


def parse_config(config: Mapping[str, Any], cni_args: CniArgs | None = None) -> StaticConfig:
    """Validate the request config; InvalidConfig names the offending field."""
    ipam = read_object(config, "ipam", "")
    if ipam is None:
        raise InvalidConfig("IPAM config missing 'ipam' key")
    listed = read_list(ipam, "addresses", "ipam")
    addresses = [_parse_address_entry(raw, f"ipam.addresses[{i}]") for i, raw in enumerate(listed)]
    if cni_args is not None:
        addresses = _apply_cni_args(addresses, cni_args)

    args = read_object(config, "args", "") or {}
    cni = read_object(args, "cni", "args") or {}
    runtime = read_object(config, "runtimeConfig", "") or {}
    for base, obj in (("args.cni", cni), ("runtimeConfig", runtime)):
        listed = read_list(obj, "ips", base)
        if listed:  # replaces everything before it: the runtime knows best
            addresses = [StaticAddress(parse_cidr_address(text, f"{base}.ips[{i}]")) for i, text in enumerate(listed)]

    cni_version = read_str(config, "cniVersion", "")
    check_one_address_per_family(cni_version, (a.address.version for a in addresses))
    return StaticConfig(
        cni_version=cni_version,
        addresses=tuple(addresses),
        routes=parse_routes(ipam, "routes", "ipam"),
        dns=parse_dns(ipam, "dns", "ipam"),
    )


def _parse_address_entry(raw: Any, path: str) -> StaticAddress:
    if not isinstance(raw, dict):
        raise InvalidConfig(f"{path}: expected an object")
    text = lookup(raw, "address")
    if not text:
        raise InvalidConfig(f"{path}.address: missing")
    address = parse_cidr_address(text, f"{path}.address")
    gateway = None
    if read_str(raw, "gateway", path):
        gateway = parse_address(lookup(raw, "gateway"), f"{path}.gateway")
        if gateway.version != address.version:
            raise InvalidConfig(f"{path}.gateway: '{gateway}' is IPv{gateway.version} but address {address} is not")
    return StaticAddress(address, gateway)


def _apply_cni_args(addresses: list[StaticAddress], cni_args: CniArgs) -> list[StaticAddress]:
    given = cni_args.take({"IP", "GATEWAY"})  # Go's LoadArgs: unknown keys fail unless IgnoreUnknown
    out = list(addresses)
    for item in _comma_list(given.get("IP", "")):
        out.append(StaticAddress(parse_cidr_address(item, "CNI_ARGS IP")))
    for item in _comma_list(given.get("GATEWAY", "")):
        gateway = parse_address(item, "CNI_ARGS GATEWAY")
        out = [replace(a, gateway=gateway) if gateway in a.address.network else a for a in out]
    return out


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",")] if text else []


def cmd_add(args: skel.CmdArgs) -> Result:
    conf = parse_config(args.config, args.cni_args())
    ips = tuple(IPConfig(address=a.address, gateway=a.gateway) for a in conf.addresses)
    return Result(cni_version=args.cni_version, ips=ips, routes=conf.routes, dns=conf.dns)


def cmd_del(args: skel.CmdArgs) -> None:
    """Nothing was allocated, so nothing is released; not even the config is read (DEL must not fail)."""


def cmd_check(args: skel.CmdArgs) -> None:
    conf = parse_config(args.config, args.cni_args())
    prev = args.prev_result()
    if prev is None:
        raise InvalidConfig("static: Required prevResult missing")
    for wanted in conf.addresses:
        found = next((ip for ip in prev.ips if ip.address.ip == wanted.address.ip), None)
        if found is None:
            raise CniError(f"static: failed to find address {wanted.address.ip} in prevResult")
        if wanted.gateway is not None and found.gateway != wanted.gateway:
            raise CniError(f"static: Failed to match addr {wanted.address.ip} on interface {args.ifname}")


if __name__ == "__main__":
    from pycni.registry import load_plugin

    skel.main(load_plugin("static"))
