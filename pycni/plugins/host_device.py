"""host-device: lend an existing host network device to the container.

Config (spec 6.6), one selector required; when several are given the
first of this order wins (the reference's): ``device`` (link name),
``hwaddr`` (MAC), ``kernelpath`` (a /sys/devices/... directory whose
``net`` entry names the device), ``pciBusID`` (overridden by
``runtimeConfig.deviceID``, which may also name an auxiliary-bus device).
``ipam`` is optional, ``dns`` replaces IPAM's DNS.

ADD moves the device into the container renamed to CNI_IFNAME, its alias
recording the host name, and addresses it (or just sets it up). A PCI
device bound to a user-space (DPDK) driver has no netdev: nothing is
moved and the result names CNI_IFNAME with IPAM's addresses unapplied.
DEL runs IPAM DEL first, always, even when CNI_NETNS is empty or gone (the
reference skips it then, cni#1167), and moves the device back under its
original name. A device that is no longer in the container (its netns
died) is not an error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pycni import skel
from pycni.ipam.delegate import ipam_add, ipam_del, released_on_failure
from pycni.plugins.attach import Expected, add_single_link, check_single_link, ipam_status_and_gc, renderable
from pycni.plugins.common import assemble_result, dns_from_conf, require_ips, validate_mac
from pycni.plugins.linkconf import read_ipam_type, read_link_name
from pycni.spec.errors import InvalidConfig
from pycni.spec.fields import read_str

if TYPE_CHECKING:
    from pycni.net.links import LinkInfo
    from pycni.spec.result import DNS, Result

_PCI_ID = re.compile(r"^[0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")
_SYS_DEVICES = "/sys/devices/"


@dataclass(frozen=True)
class HostDeviceConf:
    device: str
    hwaddr: str
    kernel_path: str
    pci_id: str  # pciBusID, or runtimeConfig.deviceID when set
    ipam_type: str
    dns: DNS | None


def _read_kernel_path(config: Mapping[str, Any]) -> str:
    path = read_str(config, "kernelpath", "")
    if not path:
        return ""
    if not path.startswith(_SYS_DEVICES) or ".." in path.split("/"):
        raise InvalidConfig(f"kernelpath: {path!r} must be an absolute path under {_SYS_DEVICES} (no '..')")
    return path.rstrip("/")


def _read_device_id(config: Mapping[str, Any], key: str, where: str) -> str:
    """A PCI address (0000:00:19.0) or, for runtimeConfig.deviceID, an auxiliary device name."""
    value = read_str(config, key, where)
    path = f"{where}.{key}" if where else key
    if not value:
        return ""
    if "/" in value or value in (".", "..") or any(c.isspace() for c in value):
        raise InvalidConfig(f"{path}: {value!r} is not a device ID")
    if not where and not _PCI_ID.match(value):
        raise InvalidConfig(f"{path}: {value!r} is not a PCI address (like 0000:00:19.0)")
    return value


def parse_conf(config: Mapping[str, Any]) -> HostDeviceConf:
    hwaddr = read_str(config, "hwaddr", "")
    if hwaddr:
        validate_mac(hwaddr, "hwaddr")
    runtime = config.get("runtimeConfig")
    device_id = _read_device_id(runtime, "deviceID", "runtimeConfig") if isinstance(runtime, dict) else ""
    conf = HostDeviceConf(
        device=read_link_name(config, "device"),
        hwaddr=hwaddr,
        kernel_path=_read_kernel_path(config),
        pci_id=device_id or _read_device_id(config, "pciBusID", ""),
        ipam_type=read_ipam_type(config),
        dns=dns_from_conf(config),
    )
    if not (conf.device or conf.hwaddr or conf.kernel_path or conf.pci_id):
        raise InvalidConfig('specify either "device", "hwaddr", "kernelpath" or "pciBusID"')
    return conf


def _dpdk_mode(conf: HostDeviceConf) -> bool:
    """The selected device is a PCI function bound to a user-space driver (no netdev to move)."""
    if conf.device or conf.hwaddr or conf.kernel_path or not conf.pci_id:
        return False
    from pycni.net.hostdev import USERSPACE_DRIVERS, pci_driver

    return pci_driver(conf.pci_id) in USERSPACE_DRIVERS


def find_host_device(conf: HostDeviceConf) -> LinkInfo:
    """The host link the config selects; InvalidConfig naming the selector if there is none."""
    from pycni.net import hostdev
    from pycni.net.errors import LinkNotFound
    from pycni.net.links import get_link

    try:
        if conf.device:
            return get_link(conf.device)
        if conf.hwaddr:
            return hostdev.find_device_by_mac(conf.hwaddr)
        if conf.kernel_path:
            return hostdev.find_device_by_kernel_path(conf.kernel_path)
        if hostdev.is_auxiliary_device(conf.pci_id):
            return hostdev.find_device_by_auxiliary_id(conf.pci_id)
        return hostdev.find_device_by_pci_id(conf.pci_id)
    except LinkNotFound as exc:
        if conf.device:
            raise InvalidConfig(f'device: link "{conf.device}" not found') from exc
        key = "hwaddr" if conf.hwaddr else "kernelpath" if conf.kernel_path else "pciBusID"
        raise InvalidConfig(f"{key}: {exc.msg}") from exc


def _add_dpdk(args: skel.CmdArgs, conf: HostDeviceConf) -> Result:
    """A DPDK-bound device: report it under CNI_IFNAME with IPAM's addresses, configure nothing."""
    from pycni.spec.result import Interface

    iface = Interface(name=args.ifname, sandbox=args.netns)
    if not conf.ipam_type:
        result = assemble_result(args.cni_version, [iface], 0, None, conf.dns)
        renderable(result, args.cni_version)
        return result
    ipam_result = ipam_add(args)
    with released_on_failure(args):
        require_ips(ipam_result, conf.ipam_type)
        result = assemble_result(args.cni_version, [iface], 0, ipam_result, conf.dns)
        renderable(result, args.cni_version)
    return result


def cmd_add(args: skel.CmdArgs) -> Result:
    conf = parse_conf(args.config)
    if _dpdk_mode(conf):
        return _add_dpdk(args, conf)
    device = find_host_device(conf)

    def create() -> LinkInfo:
        from pycni.net.hostdev import lend_device

        return lend_device(device.name, args.netns, args.ifname)

    def undo() -> None:
        from pycni.net.hostdev import reclaim_device

        reclaim_device(args.netns, args.ifname)

    return add_single_link(args, create=create, undo=undo, use_ipam=bool(conf.ipam_type), dns=conf.dns, notify=False)


def cmd_del(args: skel.CmdArgs) -> None:
    if read_ipam_type(args.config):
        ipam_del(args)
    if not args.netns:
        return
    try:
        dpdk = _dpdk_mode(parse_conf(args.config))
    except InvalidConfig:
        dpdk = False  # a config that never could ADD: a device of ours would still carry its alias
    if not dpdk:
        from pycni.net.hostdev import reclaim_device

        reclaim_device(args.netns, args.ifname)


def cmd_check(args: skel.CmdArgs) -> None:
    conf = parse_conf(args.config)
    if _dpdk_mode(conf):
        if conf.ipam_type:
            from pycni.ipam.delegate import ipam_check

            ipam_check(args)
        return
    check_single_link(args, plugin="host-device", use_ipam=bool(conf.ipam_type), expected=Expected())


cmd_status, cmd_gc = ipam_status_and_gc(parse_conf)

