"""CNI results: one model (spec 1.1.0) read from and written to every version.

Contract:

- ``Result.from_wire(obj)`` accepts a parsed JSON result of any supported
  version (0.1.0 .. 1.1.0), including IPAM-abbreviated ones (no interfaces,
  no ``ips[].interface``). A malformed result raises DecodingFailure whose
  message starts with the JSON path of the problem (``ips[0].address: ...``);
  an unsupported ``cniVersion`` raises IncompatibleVersion. Unknown keys are
  ignored, as the Go reference does.
- ``Result.to_wire(version)`` renders the model in that version's shape and
  silently drops what the version cannot express. It fails (IncompatibleVersion)
  only when nothing meaningful is left: a 0.1.0/0.2.0 result needs an IP.
- Every conversion is therefore ``from_wire`` then ``to_wire``: there is no
  pairwise table to keep in sync.

Pure: no I/O. ``dumps`` is the one canonical byte encoding for stdout/caches.
"""

from __future__ import annotations

from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
    ip_address,
    ip_interface,
    ip_network,
)

from pycni.spec import wirejson
from pycni.spec.errors import IncompatibleVersion
from pycni.spec.readers import RESULTS, join
from pycni.spec.record import record, replace
from pycni.spec.version import SUPPORTED_VERSIONS, result_family, version_at_least

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~4 ms, with re and enum, of a cold plugin call)
if TYPE_CHECKING:
    from typing import Any, Literal

__all__ = [
    "DNS",
    "IPConfig",
    "Interface",
    "Result",
    "Route",
    "convert_result",
    "dumps",
]

IPAddress = IPv4Address | IPv6Address
IPCidr = IPv4Interface | IPv6Interface
IPNetwork = IPv4Network | IPv6Network

#: The first version whose result carries interface mtu/socketPath/pciID and
#: route mtu/advmss/priority/table/scope.
_EXTENDED_SINCE = "1.1.0"


# --------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------


def _freeze(obj: object, *names: str) -> None:
    """Store list arguments as tuples, so callers may pass lists and the value stays hashable."""
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, list):
            object.__setattr__(obj, name, tuple(value))


@record
class Interface:
    """An interface created by the attachment, in the container or on the host."""

    name: str
    mac: str = ""
    mtu: int | None = None
    sandbox: str = ""  # netns path; empty for host-side interfaces
    socket_path: str = ""
    pci_id: str = ""


@record
class IPConfig:
    """An address (with its prefix), its subnet's gateway and the owning interface index."""

    address: IPv4Interface | IPv6Interface
    gateway: IPv4Address | IPv6Address | None = None
    interface: int | None = None  # index into Result.interfaces

    @property
    def family(self) -> Literal[4, 6]:
        return 4 if isinstance(self.address, IPv4Interface) else 6


@record
class Route:
    dst: IPv4Network | IPv6Network
    gw: IPv4Address | IPv6Address | None = None
    mtu: int | None = None
    advmss: int | None = None
    priority: int | None = None
    # None means unset: table 0 and scope 0 (global) are meaningful values.
    table: int | None = None
    scope: int | None = None


@record
class DNS:
    nameservers: tuple[str, ...] = ()
    domain: str = ""
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _freeze(self, "nameservers", "search", "options")

    def is_empty(self) -> bool:
        return not (self.nameservers or self.domain or self.search or self.options)


@record
class Result:
    """A success result in the 1.1.0 model; ``cni_version`` is the version it was read in or is meant for."""

    cni_version: str
    interfaces: tuple[Interface, ...] = ()
    ips: tuple[IPConfig, ...] = ()
    routes: tuple[Route, ...] = ()
    dns: DNS = DNS()

    def __post_init__(self) -> None:
        _freeze(self, "interfaces", "ips", "routes")

    def to_wire(self, version: str | None = None) -> dict[str, Any]:
        """Render as a JSON object in ``version`` (default: ``cni_version``)."""
        version = self.cni_version if version is None else version
        _check_supported(version)
        render = _render_legacy if result_family(version) == "0.2" else _render_current
        return {"cniVersion": version, **render(self, version)}

    @classmethod
    def from_wire(cls, data: Any, default_version: str = "") -> Result:
        """Parse a result of any supported version.

        A result without ``cniVersion`` (or with ``""``) is read as
        ``default_version``; libcni passes the request config's version here.
        ``""`` means 0.1.0.
        """
        obj = RESULTS.as_object(data, "result")
        version = RESULTS.read_str(obj, "cniVersion", "") or default_version or "0.1.0"
        _check_supported(version)
        family = result_family(version)
        if family == "0.2":
            ips, routes = _parse_legacy_ips(obj)
            return cls(version, ips=ips, routes=routes, dns=_parse_dns(obj))
        interfaces = _parse_interfaces(obj, extended=family == "1.x")
        ips = _parse_ips(obj, len(interfaces), versioned=family == "0.4")
        return cls(version, interfaces=interfaces, ips=ips, routes=_parse_routes(obj, ""), dns=_parse_dns(obj))

    def with_version(self, version: str) -> Result:
        """The same content labelled ``version``; what it cannot express is dropped at ``to_wire``."""
        _check_supported(version)
        return replace(self, cni_version=version)


def convert_result(data: Any, to_version: str, default_version: str = "") -> dict[str, Any]:
    """Convert a wire result of any version to ``to_version``'s wire shape."""
    return Result.from_wire(data, default_version).to_wire(to_version)


def dumps(obj: dict[str, Any]) -> bytes:
    """The canonical encoding printed by plugins: 4-space indent, no trailing newline (Go's MarshalIndent)."""
    return wirejson.dumps_indented(obj).encode("utf-8")


def _check_supported(version: str) -> None:
    if version not in SUPPORTED_VERSIONS:
        quoted = ", ".join(f'"{v}"' for v in SUPPORTED_VERSIONS)
        details = f'result version is "{version}", supported: [{quoted}]'
        raise IncompatibleVersion("unsupported CNI result version", details)


# --------------------------------------------------------------------------
# Parsing: pycni.spec.readers (RESULTS) plus the address and block readers
# --------------------------------------------------------------------------


def _has_plain_prefix(text: str) -> bool:
    """True for ``addr/NN``: Go's ParseCIDR takes neither netmasks, zones nor a missing prefix."""
    addr, sep, prefix = text.partition("/")
    return bool(sep) and prefix.isascii() and prefix.isdigit() and "%" not in addr


def _parse_cidr(text: str, path: str) -> IPCidr:
    if _has_plain_prefix(text):
        try:
            return ip_interface(text)
        except ValueError:
            pass
    raise RESULTS.fail(path, f"{text!r} is not an IP address with prefix")


def _parse_network(text: str, path: str) -> IPNetwork:
    if _has_plain_prefix(text):
        try:
            # Host bits are masked off rather than rejected: Go accepts them,
            # and the kernel only knows the network anyway.
            return ip_network(text, strict=False)
        except ValueError:
            pass
    raise RESULTS.fail(path, f"{text!r} is not a CIDR")


def _parse_address(text: str, path: str) -> IPAddress:
    if "%" not in text:  # Go's ParseIP takes no zone
        try:
            return ip_address(text)
        except ValueError:
            pass
    raise RESULTS.fail(path, f"{text!r} is not an IP address")


def _read_gateway(obj: dict[str, Any], key: str, base: str, family: int, owner: str) -> IPAddress | None:
    """An optional address that must share ``family`` with ``owner`` (the address or dst it belongs to)."""
    text = RESULTS.read_str(obj, key, base)
    if not text:  # Go's net.IP decodes "" as nil
        return None
    path = join(base, key)
    gateway = _parse_address(text, path)
    if gateway.version != family:
        raise RESULTS.fail(path, f"{text!r} is IPv{gateway.version} but {owner} is IPv{family}")
    return gateway


def _parse_route(raw: Any, path: str) -> Route:
    obj = RESULTS.as_object(raw, path)
    dst = _parse_network(RESULTS.read_str(obj, "dst", path, required=True), join(path, "dst"))
    # Every version reads the 1.1 route fields: Go shares one Route type
    # across all result versions, so a Go plugin may have written them.
    return Route(
        dst=dst,
        gw=_read_gateway(obj, "gw", path, dst.version, f"dst {dst}"),
        mtu=RESULTS.read_uint(obj, "mtu", path),
        advmss=RESULTS.read_uint(obj, "advmss", path),
        priority=RESULTS.read_uint(obj, "priority", path),
        table=RESULTS.read_uint(obj, "table", path),
        scope=RESULTS.read_uint(obj, "scope", path),
    )


def _parse_routes(obj: dict[str, Any], base: str) -> tuple[Route, ...]:
    key = join(base, "routes")
    return tuple(_parse_route(raw, f"{key}[{i}]") for i, raw in enumerate(RESULTS.read_list(obj, "routes", base)))


def _parse_dns(obj: dict[str, Any]) -> DNS:
    raw = obj.get("dns")
    if raw is None:
        return DNS()
    dns = RESULTS.as_object(raw, "dns")
    return DNS(
        nameservers=RESULTS.read_strings(dns, "nameservers", "dns"),
        domain=RESULTS.read_str(dns, "domain", "dns"),
        search=RESULTS.read_strings(dns, "search", "dns"),
        options=RESULTS.read_strings(dns, "options", "dns"),
    )


def _parse_interface(raw: Any, path: str, *, extended: bool) -> Interface:
    obj = RESULTS.as_object(raw, path)
    name = RESULTS.read_str(obj, "name", path, required=True)
    if not name:
        raise RESULTS.fail(join(path, "name"), "must not be empty")
    iface = Interface(name=name, mac=RESULTS.read_str(obj, "mac", path), sandbox=RESULTS.read_str(obj, "sandbox", path))
    if not extended:
        # 0.3.x/0.4.0 interfaces have no such fields; Go ignores them there too.
        return iface
    return replace(
        iface,
        mtu=RESULTS.read_uint(obj, "mtu", path),
        socket_path=RESULTS.read_str(obj, "socketPath", path),
        pci_id=RESULTS.read_str(obj, "pciID", path),
    )


def _parse_interfaces(obj: dict[str, Any], *, extended: bool) -> tuple[Interface, ...]:
    items = RESULTS.read_list(obj, "interfaces", "")
    return tuple(_parse_interface(raw, f"interfaces[{i}]", extended=extended) for i, raw in enumerate(items))


def _parse_ip(raw: Any, path: str, n_interfaces: int, *, versioned: bool) -> IPConfig:
    obj = RESULTS.as_object(raw, path)
    address = _parse_cidr(RESULTS.read_str(obj, "address", path, required=True), join(path, "address"))
    if versioned:
        _check_ip_version(obj, path, address)
    index = RESULTS.read_uint(obj, "interface", path)
    if index is not None and index >= n_interfaces:
        raise RESULTS.fail(join(path, "interface"), f"index {index} out of range ({n_interfaces} interfaces)")
    gateway = _read_gateway(obj, "gateway", path, address.version, f"address {address}")
    return IPConfig(address=address, gateway=gateway, interface=index)


def _check_ip_version(obj: dict[str, Any], path: str, address: IPCidr) -> None:
    """0.3.x/0.4.0 require ``version``; a wrong one would misfile the IP when converting to 0.2.0."""
    version = RESULTS.read_str(obj, "version", path, required=True)
    if version not in ("4", "6"):
        raise RESULTS.fail(join(path, "version"), f'{version!r} is not "4" or "6"')
    if int(version) != address.version:
        raise RESULTS.fail(join(path, "version"), f'"{version}" does not match IPv{address.version} address {address}')


def _parse_ips(obj: dict[str, Any], n_interfaces: int, *, versioned: bool) -> tuple[IPConfig, ...]:
    items = RESULTS.read_list(obj, "ips", "")
    return tuple(_parse_ip(raw, f"ips[{i}]", n_interfaces, versioned=versioned) for i, raw in enumerate(items))


def _parse_legacy_ips(obj: dict[str, Any]) -> tuple[tuple[IPConfig, ...], tuple[Route, ...]]:
    """0.1.0/0.2.0: ``ip4``/``ip6`` blocks, each holding one address and that family's routes."""
    ips: list[IPConfig] = []
    routes: list[Route] = []
    for key, family in (("ip4", 4), ("ip6", 6)):
        raw = obj.get(key)
        if raw is None:
            continue
        block = RESULTS.as_object(raw, key)
        text = RESULTS.read_str(block, "ip", key, required=True)
        address = _parse_cidr(text, f"{key}.ip")
        if address.version != family:
            raise RESULTS.fail(f"{key}.ip", f"{text!r} is not an IPv{family} address")
        gateway = _read_gateway(block, "gateway", key, family, f"{key}.ip")
        ips.append(IPConfig(address=address, gateway=gateway))
        routes.extend(_parse_routes(block, key))
    return tuple(ips), tuple(routes)


# --------------------------------------------------------------------------
# Rendering: Go's omitempty rules, Go's key order
# --------------------------------------------------------------------------


def _render_dns(dns: DNS) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if dns.nameservers:
        out["nameservers"] = list(dns.nameservers)
    if dns.domain:
        out["domain"] = dns.domain
    if dns.search:
        out["search"] = list(dns.search)
    if dns.options:
        out["options"] = list(dns.options)
    return out


def _render_interface(iface: Interface, *, extended: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": iface.name}
    if iface.mac:
        out["mac"] = iface.mac
    if extended and iface.mtu:
        out["mtu"] = iface.mtu
    if iface.sandbox:
        out["sandbox"] = iface.sandbox
    if extended and iface.socket_path:
        out["socketPath"] = iface.socket_path
    if extended and iface.pci_id:
        out["pciID"] = iface.pci_id
    return out


def _render_ip(ip: IPConfig, *, versioned: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if versioned:
        out["version"] = str(ip.family)
    if ip.interface is not None:  # index 0 is a real index
        out["interface"] = ip.interface
    out["address"] = str(ip.address)
    if ip.gateway is not None:
        out["gateway"] = str(ip.gateway)
    return out


def _render_route(route: Route, *, extended: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"dst": str(route.dst)}
    if route.gw is not None:
        out["gw"] = str(route.gw)
    if not extended:
        # Spec-correct: these fields only exist from 1.1.0. Go's shared
        # Route type would still print them in older versions.
        return out
    if route.mtu:
        out["mtu"] = route.mtu
    if route.advmss:
        out["advmss"] = route.advmss
    if route.priority:
        out["priority"] = route.priority
    # Pointers in Go: emitted whenever set, because 0 is meaningful.
    if route.table is not None:
        out["table"] = route.table
    if route.scope is not None:
        out["scope"] = route.scope
    return out


def _render_current(result: Result, version: str) -> dict[str, Any]:
    """0.3.0 .. 1.1.0: interfaces/ips/routes lists; ``ips[].version`` only before 1.0.0."""
    extended = version_at_least(version, _EXTENDED_SINCE)
    versioned = result_family(version) == "0.4"
    out: dict[str, Any] = {}
    if result.interfaces:
        out["interfaces"] = [_render_interface(i, extended=extended) for i in result.interfaces]
    if result.ips:
        out["ips"] = [_render_ip(ip, versioned=versioned) for ip in result.ips]
    if result.routes:
        out["routes"] = [_render_route(r, extended=extended) for r in result.routes]
    if not result.dns.is_empty():
        out["dns"] = _render_dns(result.dns)
    return out


def _render_legacy(result: Result, version: str) -> dict[str, Any]:
    """0.1.0/0.2.0: the first IP of each family; routes filed under their family; no interfaces."""
    first: dict[int, IPConfig] = {}
    for candidate in result.ips:
        first.setdefault(candidate.family, candidate)
    if not first:
        details = f"a {version} result needs an IPv4 or IPv6 address"
        raise IncompatibleVersion("cannot convert: no valid IP addresses", details)
    out: dict[str, Any] = {}
    for key, family in (("ip4", 4), ("ip6", 6)):
        ip = first.get(family)
        if ip is None:
            continue  # and this family's routes have nowhere to go
        block: dict[str, Any] = {"ip": str(ip.address)}
        if ip.gateway is not None:
            block["gateway"] = str(ip.gateway)
        routes = [_render_route(r, extended=False) for r in result.routes if r.dst.version == family]
        if routes:
            block["routes"] = routes
        out[key] = block
    if not result.dns.is_empty():
        out["dns"] = _render_dns(result.dns)
    return out
