"""host-device's config parsing (no root, no kernel)."""

from __future__ import annotations

import pytest

from pycni.plugins.host_device import parse_conf
from pycni.spec.errors import InvalidConfig


def test_device_selector() -> None:
    conf = parse_conf({"device": "enp3s0", "ipam": {"type": "static"}})
    assert (conf.device, conf.hwaddr, conf.kernel_path, conf.pci_id, conf.ipam_type) == ("enp3s0", "", "", "", "static")


def test_other_selectors() -> None:
    assert parse_conf({"hwaddr": "02:00:00:00:00:01"}).hwaddr == "02:00:00:00:00:01"
    assert parse_conf({"kernelpath": "/sys/devices/pci0000:00/0000:00:19.0/"}).kernel_path == (
        "/sys/devices/pci0000:00/0000:00:19.0"
    )
    assert parse_conf({"pciBusID": "0000:00:19.0"}).pci_id == "0000:00:19.0"


def test_runtime_device_id_overrides_pci_bus_id_and_may_be_auxiliary() -> None:
    conf = parse_conf({"pciBusID": "0000:00:19.0", "runtimeConfig": {"deviceID": "0000:af:00.2"}})
    assert conf.pci_id == "0000:af:00.2"
    assert parse_conf({"runtimeConfig": {"deviceID": "mlx5_core.sf.4"}}).pci_id == "mlx5_core.sf.4"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, 'specify either "device", "hwaddr", "kernelpath" or "pciBusID"'),
        ({"ipam": {"type": "static"}}, 'specify either "device"'),
        ({"device": "../eth0"}, "device: '../eth0' is not a valid interface name"),
        ({"device": "x" * 16}, "device: 'xxxxxxxxxxxxxxxx' is not a valid interface name"),
        ({"hwaddr": "00:11"}, "hwaddr: '00:11' is not a MAC address"),
        ({"kernelpath": "sys/devices/x"}, "kernelpath: 'sys/devices/x' must be an absolute path under /sys/devices/"),
        ({"kernelpath": "/sys/class/net/eth0"}, "must be an absolute path under /sys/devices/"),
        ({"kernelpath": "/sys/devices/../../etc"}, "(no '..')"),
        ({"pciBusID": "00:19.0"}, "pciBusID: '00:19.0' is not a PCI address"),
        ({"pciBusID": "../../../etc"}, "pciBusID: '../../../etc' is not a device ID"),
        ({"runtimeConfig": {"deviceID": "a/b"}}, "runtimeConfig.deviceID: 'a/b' is not a device ID"),
    ],
)
def test_rejects(config: dict, message: str) -> None:
    with pytest.raises(InvalidConfig) as err:
        parse_conf(config)
    assert err.value.code == 7 and message in err.value.msg
