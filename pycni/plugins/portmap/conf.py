"""portmap's configuration and what it asks for, as values (pure, no I/O).

Contract:

- ``parse_conf(config)`` reads the plugin object (and its
  ``runtimeConfig.portMappings``) and fills defaults; every problem is an
  InvalidConfig (code 7) whose message starts with the JSON path of the
  field (``runtimeConfig.portMappings[0].hostPort: 70000 is out of range
  1-65535``).
- ``plan_targets(conf, prev_result, ifname)`` picks the container's first
  IPv4 and first IPv6 address from prevResult (those of ``ifname`` in a
  sandbox, or with no interface index) and splits the mappings by family:
  a mapping with a ``hostIP`` applies to that family only, one without to
  both. A ``hostIP`` whose family the container lacks is an error rather
  than a silent no-op.
- ``Forward`` is one installed mapping as the kernel holds it; backends
  return the ones they removed so DEL can clear their conntrack entries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import TYPE_CHECKING, Any, Literal

from pycni.plugins.common import owner_tag
from pycni.spec.errors import InvalidConfig
from pycni.spec.fields import parse_address
from pycni.spec.readers import (
    FIELDS,
    lookup,
    read_bool,
    read_choice,
    read_int,
    read_list,
    read_object,
    read_str,
    read_strings,
)

if TYPE_CHECKING:
    from pycni.spec.result import Result

__all__ = [
    "BACKENDS",
    "PROTOCOLS",
    "Attachment",
    "FamilyTarget",
    "Forward",
    "PortMapConf",
    "PortMapping",
    "conditions_syntax",
    "parse_conf",
    "plan_targets",
]

PROTOCOLS = ("tcp", "udp", "sctp")
BACKENDS = ("nftables", "iptables")
DEFAULT_MARK_BIT = 13  # Kubernetes uses 14 and 15, Calico 20-31

Family = Literal[4, 6]
IPAddress = IPv4Address | IPv6Address
IPInterface = IPv4Interface | IPv6Interface


@dataclass(frozen=True)
class PortMapping:
    """One entry of ``runtimeConfig.portMappings``; ``host_ip`` None means every host address."""

    host_port: int
    container_port: int
    protocol: str = "tcp"
    host_ip: IPAddress | None = None
    index: int = 0  # position in the list, for messages

    @property
    def where(self) -> str:
        return f"runtimeConfig.portMappings[{self.index}]"


@dataclass(frozen=True)
class PortMapConf:
    network: str
    cni_version: str
    #: None when ``runtimeConfig.portMappings`` is absent (DEL then cleans up by owner tag);
    #: an empty tuple when the runtime sent an empty list.
    mappings: tuple[PortMapping, ...] | None
    snat: bool = True
    masq_all: bool = False
    mark_masq_bit: int = DEFAULT_MARK_BIT
    external_set_mark_chain: str = ""
    conditions_v4: tuple[str, ...] = ()
    conditions_v6: tuple[str, ...] = ()
    backend: str = "nftables"

    def conditions(self, family: Family) -> tuple[str, ...]:
        return self.conditions_v4 if family == 4 else self.conditions_v6


@dataclass(frozen=True)
class Attachment:
    """Who owns the rules: (network, container ID, ifname), and the tag they carry."""

    network: str
    container_id: str
    ifname: str

    @property
    def tag(self) -> str:
        return owner_tag("portmap", self.network, self.container_id, self.ifname)


@dataclass(frozen=True)
class FamilyTarget:
    """The container address of one family and the mappings that forward to it."""

    family: Family
    address: IPInterface  # with its prefix: the subnet is where hairpin traffic comes from
    mappings: tuple[PortMapping, ...]

    @property
    def ip(self) -> IPAddress:
        return self.address.ip


@dataclass(frozen=True, order=True)
class Forward:
    """One mapping as installed: ``host_ip`` None means any local address."""

    family: Family
    protocol: str
    host_port: int
    pod_ip: str
    container_port: int
    host_ip: str | None = None


# -- parsing -------------------------------------------------------------------


def parse_conf(config: Mapping[str, Any]) -> PortMapConf:
    """The plugin config with defaults filled in; InvalidConfig names the bad field."""
    name, version = config.get("name"), config.get("cniVersion")
    external = read_str(config, "externalSetMarkChain", "")
    if lookup(config, "markMasqBit") is not None and external:
        raise InvalidConfig("markMasqBit: cannot be set together with externalSetMarkChain")
    mark_bit = read_int(config, "markMasqBit", "", min=0, max=31)
    backend = read_choice(config, "backend", "", BACKENDS, "nftables")
    conditions = {family: _conditions(config, family, backend) for family in (4, 6)}
    if backend == "nftables" and external:
        raise InvalidConfig("externalSetMarkChain: only the iptables backend uses a mark chain")
    if external and not _valid_chain_name(external):
        raise InvalidConfig(f"externalSetMarkChain: {external!r} is not a valid iptables chain name")
    return PortMapConf(
        network=name if isinstance(name, str) else "",
        cni_version=version if isinstance(version, str) else "",
        mappings=_mappings(config),
        snat=read_bool(config, "snat", "", default=True),
        masq_all=read_bool(config, "masqAll", ""),
        mark_masq_bit=DEFAULT_MARK_BIT if mark_bit is None else mark_bit,
        external_set_mark_chain=external,
        conditions_v4=conditions[4],
        conditions_v6=conditions[6],
        backend=backend,
    )


def conditions_syntax(tokens: Sequence[str]) -> str:
    """``iptables`` when the first token starts with ``-`` or ``!`` (the reference's rule), else ``nftables``."""
    return "iptables" if tokens and tokens[0][:1] in ("-", "!") else "nftables"


def _conditions(config: Mapping[str, Any], family: Family, backend: str) -> tuple[str, ...]:
    key = f"conditionsV{family}"
    tokens = read_strings(config, key, "")
    if any(c in token for token in tokens for c in ";\n\r\0"):
        raise InvalidConfig(f"{key}: a condition may not contain ';', a newline or a NUL byte")
    syntax = conditions_syntax(tokens)
    if tokens and syntax != backend:
        raise InvalidConfig(
            f"{key}: {' '.join(tokens)!r} is {syntax} syntax but the backend is {backend}"
            f" (set \"backend\": \"{syntax}\" or write the conditions in {backend} syntax)"
        )
    return tokens


def _mappings(config: Mapping[str, Any]) -> tuple[PortMapping, ...] | None:
    runtime = read_object(config, "runtimeConfig", "")
    if runtime is None or lookup(runtime, "portMappings") is None:
        return None
    seen: dict[tuple[IPAddress | None, str, int], PortMapping] = {}
    out: list[PortMapping] = []
    for index, raw in enumerate(read_list(runtime, "portMappings", "runtimeConfig")):
        mapping = _mapping(raw, index)
        key = (mapping.host_ip, mapping.protocol, mapping.host_port)
        first = seen.get(key)
        if first is None:
            seen[key] = mapping
            out.append(mapping)
        elif first.container_port != mapping.container_port:
            raise InvalidConfig(
                f"{mapping.where}: {mapping.protocol} host port {mapping.host_port} is already mapped"
                f" to container port {first.container_port} by runtimeConfig.portMappings[{first.index}]"
            )
    return tuple(out)


def _mapping(raw: Any, index: int) -> PortMapping:
    where = f"runtimeConfig.portMappings[{index}]"
    raw = FIELDS.as_object(raw, where)
    ports = {}
    for key in ("hostPort", "containerPort"):
        port = read_int(raw, key, where, min=1, max=65535)
        if port is None:
            raise InvalidConfig(f"{where}.{key}: missing")
        ports[key] = port
    protocol = read_choice(raw, "protocol", where, PROTOCOLS, "tcp", ignore_case=True)
    host_ip_text = read_str(raw, "hostIP", where)
    host_ip = parse_address(host_ip_text, f"{where}.hostIP") if host_ip_text else None
    return PortMapping(ports["hostPort"], ports["containerPort"], protocol, host_ip, index)


def _valid_chain_name(name: str) -> bool:
    return 0 < len(name) <= 28 and not any(c.isspace() or c in "\"'!" for c in name) and not name.startswith("-")


# -- what ADD/CHECK act on -------------------------------------------------------


def container_addresses(prev: Result, ifname: str) -> dict[Family, IPInterface]:
    """The first IPv4 and first IPv6 address of the container interface ``ifname``.

    An address whose ``interface`` index names a host-side interface (no
    sandbox) or another interface is skipped; one without an index counts.
    """
    found: dict[Family, IPInterface] = {}
    for ip in prev.ips:
        if ip.family in found:
            continue
        if ip.interface is not None and 0 <= ip.interface < len(prev.interfaces):
            iface = prev.interfaces[ip.interface]
            if iface.name != ifname or not iface.sandbox:
                continue
        found[ip.family] = ip.address
    return found


def plan_targets(conf: PortMapConf, prev: Result, ifname: str) -> tuple[FamilyTarget, ...]:
    """Per family: the container address and the mappings to install for it."""
    addresses = container_addresses(prev, ifname)
    if not addresses:
        raise InvalidConfig(f"prevResult: no IP address of interface {ifname!r} to forward ports to")
    mappings = conf.mappings or ()
    for mapping in mappings:
        if mapping.host_ip is not None and mapping.host_ip.version not in addresses:
            have = " and ".join(f"IPv{f}" for f in sorted(addresses))
            raise InvalidConfig(
                f"{mapping.where}.hostIP: '{mapping.host_ip}' is IPv{mapping.host_ip.version}"
                f" but the container only has {have}"
            )
    targets = []
    for family, address in sorted(addresses.items()):
        chosen = tuple(m for m in mappings if m.host_ip is None or m.host_ip.version == family)
        if chosen:
            targets.append(FamilyTarget(family, address, chosen))
    return tuple(targets)


def masq_sources(target: FamilyTarget, conf: PortMapConf, *, loopback: str) -> list[str]:
    """Sources whose DNATed traffic gets masqueraded (hairpin, and ``loopback`` for 127.0.0.1:<hostPort>)."""
    if not conf.snat:
        return []
    if conf.masq_all:
        return ["0.0.0.0/0" if target.family == 4 else "::/0"]
    sources = [str(target.address.network)]
    if target.family == 4:
        sources.append(loopback)
    return sources


def forwards_of(targets: Sequence[FamilyTarget]) -> list[Forward]:
    """The Forward records ADD installs for ``targets`` (what CHECK expects to find)."""
    out = []
    for target in targets:
        for m in target.mappings:
            host_ip = None if m.host_ip is None or m.host_ip.is_unspecified else str(m.host_ip)
            out.append(Forward(target.family, m.protocol, m.host_port, str(target.ip), m.container_port, host_ip))
    return sorted(set(out))


def short_hash(*parts: str, length: int = 10) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:length]
