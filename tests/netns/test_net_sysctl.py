"""pycni.net.sysctl inside namespaces, including interface names with dots."""

from __future__ import annotations

import pytest

from pycni.net.errors import NetError
from pycni.net.sysctl import enable_ip_forward, ensure_sysctl, iface_key, read_sysctl, write_sysctl
from tests.support.netns import Netns


def test_interface_names_with_dots(ctrns: Netns) -> None:
    # "eth0.100" must stay one path component: net/ipv4/conf/eth0.100/...
    ctrns.run("ip", "link", "add", "eth0.100", "type", "veth", "peer", "name", "p.1")
    key = iface_key(4, "eth0.100", "arp_notify")
    assert ctrns.call(read_sysctl, key) == "0"
    assert ctrns.call(ensure_sysctl, key, 1) is True
    assert ctrns.call(ensure_sysctl, key, 1) is False
    assert ctrns.run("cat", "/proc/sys/net/ipv4/conf/eth0.100/arp_notify").stdout.strip() == "1"


def test_enable_ip_forward_in_netns(ctrns: Netns) -> None:
    def body() -> tuple[str, str]:
        write_sysctl("net.ipv4.ip_forward", 0)
        enable_ip_forward(4)
        enable_ip_forward(6)
        enable_ip_forward(6)  # already on: no write
        return read_sysctl("net.ipv4.ip_forward"), read_sysctl("net/ipv6/conf/all/forwarding")

    assert ctrns.call(body) == ("1", "1")


def test_missing_sysctl_has_enoent(ctrns: Netns) -> None:
    with pytest.raises(NetError, match="failed to read sysctl 'net/ipv4/conf/nosuch0/arp_notify'") as caught:
        ctrns.call(read_sysctl, iface_key(4, "nosuch0", "arp_notify"))
    assert caught.value.errno == 2
