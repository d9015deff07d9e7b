"""Pieces every main plugin shares: MAC precedence, DNS override, result assembly.

Pure functions over CmdArgs and results; kernel work stays in pycni.net.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pycni.spec.errors import InvalidConfig
from pycni.spec.record import replace

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~4 ms, with re and enum, of a cold plugin call)
if TYPE_CHECKING:
    from typing import Any

    from pycni.skel import CmdArgs
    from pycni.spec.result import DNS, Interface, Result


def requested_mac(args: CmdArgs, conf_mac: str = "") -> str:
    """The container MAC the runtime asked for, "" if none.

    Later sources win, as in the reference plugins: the config's own ``mac``,
    then ``CNI_ARGS MAC=``, then ``args.cni.mac``, then ``runtimeConfig.mac``.
    """
    mac = conf_mac
    cni_args_mac = args.cni_args().get("MAC")
    if cni_args_mac:
        mac = cni_args_mac
    cni_section = args.config.get("args", {}).get("cni", {}) if isinstance(args.config.get("args"), dict) else {}
    if isinstance(cni_section, dict) and isinstance(cni_section.get("mac"), str):
        mac = cni_section["mac"]
    runtime_mac = args.runtime_config.get("mac")
    if isinstance(runtime_mac, str) and runtime_mac:
        mac = runtime_mac
    if mac:
        validate_mac(mac, "mac")
    return mac


def validate_mac(mac: str, field: str) -> None:
    parts = mac.split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts):
        raise InvalidConfig(f"{field}: {mac!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")


def require_ips(ipam_result: Result, ipam_type: str) -> None:
    if not ipam_result.ips:
        raise InvalidConfig(f"IPAM plugin {ipam_type!r} returned missing IP config")


def dns_from_conf(config: Mapping[str, Any]) -> DNS | None:
    """The config's ``dns`` section if any field is set (it then replaces IPAM's DNS)."""
    from pycni.spec.fields import parse_dns

    dns = parse_dns(config, "dns", "")
    return None if dns.is_empty() else dns


def assemble_result(
    cni_version: str,
    interfaces: Sequence[Interface],
    container_index: int,
    ipam_result: Result | None,
    conf_dns: DNS | None = None,
) -> Result:
    """The plugin's result: its interfaces plus IPAM's ips (pointed at the container iface), routes and DNS."""
    from pycni.spec.result import DNS, Result

    if ipam_result is None:
        return Result(cni_version=cni_version, interfaces=tuple(interfaces), dns=conf_dns or DNS())
    return Result(
        cni_version=cni_version,
        interfaces=tuple(interfaces),
        ips=tuple(replace(ip, interface=container_index) for ip in ipam_result.ips),
        routes=ipam_result.routes,
        dns=conf_dns or ipam_result.dns,
    )


def find_interface(result: Result, name: str, sandbox: str | None = None) -> tuple[int, Interface] | None:
    """Index and entry of the interface called ``name`` (in ``sandbox`` when given)."""
    for index, iface in enumerate(result.interfaces):
        if iface.name == name and (sandbox is None or iface.sandbox == sandbox):
            return index, iface
    return None


def owner_tag(plugin_type: str, network: str, container_id: str, ifname: str) -> str:
    """The tag host-side rules of one attachment carry (nft comments, iptables comments).

    ``pycni/<plugin>/<network>/<container id>/<ifname>``: DEL removes
    exactly the rules with the attachment's tag, and GC removes those whose
    (container id, ifname) is not in the valid set, even after a crash
    between ADD and DEL. Fits nft's 128-byte comment limit for 64-char
    container IDs and 15-char ifnames with network names up to ~30 chars;
    longer network names are shortened to a hash (uniqueness kept).
    """
    import hashlib

    if len(network) > 30:
        network = "h" + hashlib.sha256(network.encode()).hexdigest()[:16]
    return f"pycni/{plugin_type}/{network}/{container_id}/{ifname}"


def parse_owner_tag(tag: str) -> tuple[str, str, str, str] | None:
    """(plugin, network, container id, ifname) of a tag made by owner_tag, else None."""
    parts = tag.split("/")
    if len(parts) != 5 or parts[0] != "pycni":
        return None
    return parts[1], parts[2], parts[3], parts[4]
