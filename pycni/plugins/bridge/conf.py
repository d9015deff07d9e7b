"""The bridge plugin's configuration: one frozen value, validated up front.

``parse_conf(config)`` reads the request config (the parsed stdin) and
raises InvalidConfig (code 7) whose message starts with the offending
field (``vlan: 5000 is not a VLAN ID (0-4094)``). Keys are matched like
Go's encoding/json (exact spelling first, then ignoring case); unknown
keys are ignored. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

from pycni.spec.config import ipam_type_of
from pycni.spec.errors import InvalidConfig
from pycni.spec.readers import read_bool, read_choice, read_int, read_list, read_str
from pycni.spec.record import field, record
from pycni.spec.result import DNS
from pycni.spec.validate import IFNAME_MAX_BYTES

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~4 ms, with re and enum, of a cold plugin call)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["DEFAULT_BRIDGE", "MASQ_BACKENDS", "BridgeConf", "parse_conf"]

DEFAULT_BRIDGE = "cni0"
MASQ_BACKENDS = ("iptables", "nftables")
_MAX_VLAN = 4094
_MTU_RANGE = (68, 65535)


@record
class BridgeConf:
    network: str
    cni_version: str
    bridge: str = DEFAULT_BRIDGE
    is_gateway: bool = False
    is_default_gateway: bool = False  # implies is_gateway
    force_address: bool = False
    ip_masq: bool = False
    ip_masq_backend: str = ""  # "" = choose (see pycni.net.masquerade)
    mtu: int | None = None
    hairpin_mode: bool = False
    promisc_mode: bool = False
    vlan: int = 0  # access VLAN of the container port; 0 = none
    vlan_trunk: tuple[int, ...] = ()  # tagged VLANs, sorted, unique
    preserve_default_vlan: bool = False
    macspoofchk: bool = False
    enable_dad: bool = False
    disable_container_interface: bool = False
    port_isolation: bool = False
    mac: str = ""
    ipam_type: str = ""  # "" = no IPAM: a layer-2 only attachment
    dns: DNS = field(default_factory=DNS)

    @property
    def vlan_filtering(self) -> bool:
        return self.vlan != 0 or bool(self.vlan_trunk)


def _check_ifname(name: str, path: str) -> None:
    if not name or len(name.encode()) > IFNAME_MAX_BYTES:
        raise InvalidConfig(f"{path}: {name!r} is not an interface name (1 to {IFNAME_MAX_BYTES} bytes)")
    if name in (".", "..") or any(c in "/:" or c.isspace() for c in name):
        raise InvalidConfig(f"{path}: {name!r} is not an interface name (no '/', ':' or whitespace)")


def _vlan_id(obj: Mapping[str, Any], key: str, base: str, *, allow_zero: bool) -> int | None:
    low = 0 if allow_zero else 1
    return read_int(obj, key, base, min=low, max=_MAX_VLAN, out_of_range="{value} is not a VLAN ID ({min}-{max})")


def _vlan_trunk(config: Mapping[str, Any]) -> tuple[int, ...]:
    vids: set[int] = set()
    for index, item in enumerate(read_list(config, "vlanTrunk", "")):
        path = f"vlanTrunk[{index}]"
        if not isinstance(item, dict):
            raise InvalidConfig(f"{path}: expected an object with 'id' or 'minID' and 'maxID'")
        low = _vlan_id(item, "minID", path, allow_zero=False)
        high = _vlan_id(item, "maxID", path, allow_zero=False)
        if (low is None) != (high is None):
            missing = "minID" if low is None else "maxID"
            raise InvalidConfig(f"{path}.{missing}: missing (minID and maxID go together)")
        if low is not None and high is not None:
            if low > high:
                raise InvalidConfig(f"{path}: minID {low} is greater than maxID {high}")
            vids.update(range(low, high + 1))
        single = _vlan_id(item, "id", path, allow_zero=False)
        if single is not None:
            vids.add(single)
        if low is None and single is None:
            raise InvalidConfig(f"{path}: needs 'id' or 'minID' and 'maxID'")
    return tuple(sorted(vids))


def parse_conf(config: Mapping[str, Any]) -> BridgeConf:
    """Validate the bridge config; InvalidConfig names the field at fault."""
    from pycni.plugins.common import dns_from_conf, validate_mac

    bridge = read_str(config, "bridge", "") or DEFAULT_BRIDGE
    _check_ifname(bridge, "bridge")

    mtu = read_int(config, "mtu", "")
    if mtu is not None and mtu != 0 and not _MTU_RANGE[0] <= mtu <= _MTU_RANGE[1]:
        raise InvalidConfig(f"mtu: {mtu} is out of range ({_MTU_RANGE[0]}-{_MTU_RANGE[1]}, or 0 for the default)")

    backend = read_choice(config, "ipMasqBackend", "", MASQ_BACKENDS, "")

    hairpin = read_bool(config, "hairpinMode", "")
    promisc = read_bool(config, "promiscMode", "")
    if hairpin and promisc:
        raise InvalidConfig("hairpinMode, promiscMode: cannot set hairpin mode and promiscuous mode at the same time")

    vlan = _vlan_id(config, "vlan", "", allow_zero=True) or 0
    is_default_gateway = read_bool(config, "isDefaultGateway", "")
    is_gateway = read_bool(config, "isGateway", "") or is_default_gateway
    if vlan and is_gateway:
        # The gateway address then lives on a "<bridge>.<vlan>" link.
        _check_ifname(f"{bridge}.{vlan}", "bridge")

    mac = read_str(config, "mac", "")
    if mac:
        validate_mac(mac, "mac")

    ipam_type = ipam_type_of(config)
    disable_container_interface = read_bool(config, "disableContainerInterface", "")
    if disable_container_interface and ipam_type:
        raise InvalidConfig("disableContainerInterface: cannot use IPAM when the container interface is disabled")

    return BridgeConf(
        network=read_str(config, "name", ""),
        cni_version=read_str(config, "cniVersion", ""),
        bridge=bridge,
        is_gateway=is_gateway,
        is_default_gateway=is_default_gateway,
        force_address=read_bool(config, "forceAddress", ""),
        ip_masq=read_bool(config, "ipMasq", ""),
        ip_masq_backend=backend,
        mtu=mtu or None,
        hairpin_mode=hairpin,
        promisc_mode=promisc,
        vlan=vlan,
        vlan_trunk=_vlan_trunk(config),
        preserve_default_vlan=read_bool(config, "preserveDefaultVlan", ""),
        macspoofchk=read_bool(config, "macspoofchk", ""),
        enable_dad=read_bool(config, "enabledad", ""),
        disable_container_interface=disable_container_interface,
        port_isolation=read_bool(config, "portIsolation", ""),
        mac=mac,
        ipam_type=ipam_type,
        dns=dns_from_conf(config) or DNS(),
    )
