"""pycni.net parts that need no root: import cost, error translation, sysctl keys, netns checks."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pycni.net import addrs, bridge, configure, errors, links, netns, routes, stacked, sysctl, tap, veth
from pycni.net.errors import LinkExists, LinkNotFound, NetError, NetnsNotFound, NotANetns, UnsupportedKernelFeature
from pycni.net.netlink import errors as netlink_errors
from pycni.spec.errors import CniError


def test_importing_pycni_net_does_not_import_pyroute2() -> None:
    code = (
        "import sys\n"
        "import pycni.net, pycni.net.links, pycni.net.bridge, pycni.net.addrs, pycni.net.routes,"
        " pycni.net.sysctl, pycni.net.configure, pycni.net.netns, pycni.net.veth, pycni.net.stacked, pycni.net.tap\n"
        "assert 'pyroute2' not in sys.modules, 'pyroute2 imported eagerly'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("module", "names"),
    [
        (errors, {"AddressConflict", "LinkExists", "LinkNotFound", "LinkNotUp", "NetError", "NetnsNotFound",
                  "NotANetns", "UnsupportedKernelFeature"}),
        (netns, {"CLONE_NEWNET", "NetnsRef", "current_netns_path", "is_netns_path", "netlink_session", "open_netns",
                 "pids_in_netns", "run_in_netns", "same_netns", "setns", "stop_netns_processes"}),
        (sysctl, {"enable_ip_forward", "ensure_sysctl", "iface_key", "read_sysctl", "sysctl_path", "write_sysctl"}),
        (configure, {"DAD_POLL", "DAD_TIMEOUT", "configure_iface", "settle_ipv6_addresses"}),
        (addrs, {"AddressState", "add_address", "del_address", "ensure_address_on_bridge", "list_address_states",
                 "list_addresses"}),
        (routes, {"RT_SCOPE_HOST", "RT_SCOPE_LINK", "RT_SCOPE_UNIVERSE", "RT_TABLE_MAIN", "RouteInfo", "add_route",
                  "default_route_interface", "del_route", "delete_listed_route", "list_routes",
                  "replace_tagged_route", "route_exists"}),
        (bridge, {"BridgeVlan", "add_bridge_vlan", "del_bridge_vlan", "ensure_bridge", "list_bridge_vlans",
                  "set_hairpin", "set_port_isolated", "set_promisc"}),
        (links, {"IPVLAN_MODES", "MACVLAN_MODES", "OPER_DELAYS", "LinkInfo", "delete_link", "get_link",
                 "get_link_by_index", "link_exists",
                 "list_links", "move_link_to_netns", "random_ifname", "rename_link", "set_link_alias",
                 "set_link_down", "set_link_mac", "set_link_mtu", "set_link_up", "set_master", "wait_oper_up"}),
        (veth, {"create_veth_pair"}),
        (stacked, {"IpvlanMode", "MacvlanMode", "create_dummy", "create_ipvlan", "create_macvlan", "create_vlan"}),
        (tap, {"create_tap", "selinux_enabled"}),
    ],
)  # fmt: skip
def test_public_api_is_pinned(module: object, names: set[str]) -> None:
    assert set(module.__all__) == names  # type: ignore[attr-defined]
    for name in names:
        assert hasattr(module, name)


def test_every_net_error_is_a_cni_error() -> None:
    for cls in (NetError, NetnsNotFound, NotANetns, LinkNotFound, LinkExists, UnsupportedKernelFeature):
        assert issubclass(cls, CniError)
    assert LinkNotFound("x").code == 999


def test_failing_translates_oserror_with_a_go_style_cause() -> None:
    with pytest.raises(LinkNotFound) as caught, netlink_errors.failing("delete link 'eth0'"):
        raise OSError(errno.ENODEV, os.strerror(errno.ENODEV))
    assert str(caught.value) == "failed to delete link 'eth0': no such device"
    assert caught.value.errno == errno.ENODEV
    assert isinstance(caught.value.__cause__, OSError)

    with pytest.raises(NetError) as other, netlink_errors.failing("add route 'x'", by_errno={errno.EEXIST: NetError}):
        raise OSError(errno.EEXIST, os.strerror(errno.EEXIST))
    assert type(other.value) is NetError
    assert str(other.value) == "failed to add route 'x': file exists"


def test_failing_translates_netlink_errors_with_the_kernel_extack() -> None:
    from pyroute2.netlink.exceptions import NetlinkError  # type: ignore[import-untyped]

    with pytest.raises(UnsupportedKernelFeature) as caught, netlink_errors.failing("create ipvlan 'eth0'"):
        raise NetlinkError(errno.EOPNOTSUPP, "Unknown device type")
    assert str(caught.value) == "failed to create ipvlan 'eth0': operation not supported (Unknown device type)"

    exists = pytest.raises(LinkExists, match=r"^failed to add link 'a': file exists$")
    with exists, netlink_errors.failing("add link 'a'"):
        raise NetlinkError(errno.EEXIST)


def test_failing_leaves_other_exceptions_alone() -> None:
    with pytest.raises(KeyError), netlink_errors.failing("anything"):
        raise KeyError("x")


def test_sysctl_keys() -> None:
    assert sysctl.sysctl_path("net.ipv4.ip_forward") == "/proc/sys/net/ipv4/ip_forward"
    assert sysctl.sysctl_path("net/ipv6/conf/eth0.100/accept_ra") == "/proc/sys/net/ipv6/conf/eth0.100/accept_ra"
    assert sysctl.iface_key(6, "eth0.100", "accept_ra") == "net/ipv6/conf/eth0.100/accept_ra"
    assert sysctl.iface_key(4, "vlan.1.2", "arp_notify") == "net/ipv4/conf/vlan.1.2/arp_notify"
    for bad in ("", "net/../../etc/passwd", "net//x", "a..b"):
        with pytest.raises(NetError, match="invalid sysctl key"):
            sysctl.sysctl_path(bad)
    for ifname in ("", "..", ".", "a/b"):
        with pytest.raises(NetError, match="invalid interface name"):
            sysctl.iface_key(4, ifname, "forwarding")
    with pytest.raises(NetError, match="invalid sysctl name"):
        sysctl.iface_key(4, "eth0", "../x")


def test_netns_checks_without_root(tmp_path: Path) -> None:
    with pytest.raises(NetnsNotFound):
        netns.open_netns(tmp_path / "missing")
    assert not (tmp_path / "missing").exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(NotANetns):
        netns.open_netns(tmp_path / "file")
    assert netns.is_netns_path("/proc/self/ns/net")
    assert not netns.is_netns_path("/proc/self/ns/mnt")
    assert netns.same_netns(netns.current_netns_path(), "/proc/self/ns/net")


def test_random_ifname_fits_ifnamsiz() -> None:
    name = links.random_ifname("veth")
    assert len(name) == 12 and name.startswith("veth")
    assert name != links.random_ifname("veth")


def test_message_classes_load_without_the_whole_of_pyroute2_which_still_completes_on_demand() -> None:
    code = (
        "import sys\n"
        "from pycni.net.netlink import messages\n"
        "messages.pyroute2_module('netlink.rtnl.ifinfmsg')\n"
        "assert 'pyroute2.netlink.rtnl.ifinfmsg' in sys.modules\n"
        "assert 'pyroute2.ndb.main' not in sys.modules, 'the package __init__ ran'\n"
        "assert messages.pyroute2().IPRoute and messages.pyroute2().Conntrack\n"
        "import pyroute2\n"
        "assert pyroute2.IPRoute is messages.pyroute2().IPRoute\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_any_code_asking_pyroute2_for_its_api_after_the_light_path_gets_the_whole_package() -> None:
    code = (
        "import sys\n"
        "from pycni.net.netlink import messages\n"
        "messages.route_msg(2, 0, table=254, proto=4, scope=0, rtype=1)\n"
        "assert 'pyroute2.ndb.main' not in sys.modules, 'the package __init__ ran'\n"
        "from pyroute2 import IPRoute, NDB\n"  # not through pycni: the deferred package finishes itself
        "import pyroute2\n"
        "assert type(pyroute2).__name__ == 'module' and pyroute2.IPRoute is IPRoute and NDB\n"
        "assert 'pyroute2.ndb.main' in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_preload_loads_the_whole_of_pyroute2_and_the_message_classes() -> None:
    code = (
        "import sys\n"
        "import pycni.net\n"
        "assert 'pyroute2' not in sys.modules\n"
        "pycni.net.preload()\n"
        "assert {'pyroute2.iproute', 'pyroute2.conntrack', 'pyroute2.netlink.rtnl.rtmsg'} <= set(sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
