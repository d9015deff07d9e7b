"""containerd (``ctr run --cni``, a real runtime beside podman) running pycni's bridge and host-local.

Two containers on pycni's bridge reach each other; an attached ``ctr run``
runs CNI DEL when its task ends, which releases the address. A detached
``ctr run -d`` never runs DEL: its address stays reserved and its result
cached until someone DELs it, and pycni's runtime library can, from the
cache ctr's libcni wrote.
"""

from __future__ import annotations

import ipaddress
import json
import os

import pytest

from pycni.runtime import CniConfig, load_file
from tests.support.containerd import PRIVATE_PATHS, Containerd
from tests.support.host import link_exists, links_with_master
from tests.support.wait import wait_until

pytestmark = [pytest.mark.interop, pytest.mark.root]


def test_two_containers_reach_each_other_and_their_removal_releases_the_addresses(containerd: Containerd) -> None:
    net = containerd.conflist
    subnet = ipaddress.ip_network(net["plugins"][0]["ipam"]["subnet"])
    bridge = net["plugins"][0]["bridge"]
    containerd.run_attached("a", "sleep", "300")
    containerd.run_attached("b", "sleep", "300")
    containerd.wait_running("a")
    containerd.wait_running("b")
    ip_a, ip_b = containerd.ip_of("a"), containerd.ip_of("b")
    assert ipaddress.ip_address(ip_a) in subnet and ipaddress.ip_address(ip_b) in subnet
    assert containerd.reserved_ips() == sorted([ip_a, ip_b])
    veths = links_with_master(bridge)
    assert len(veths) == 2

    for src, dst in (("a", ip_b), ("b", ip_a), ("a", str(subnet[1]))):
        ping = containerd.exec(src, "ping", "-c1", "-W2", dst)
        assert ping.returncode == 0, f"{src} -> {dst}: {ping.stdout}{ping.stderr}"
    seen = containerd.exec("a", "ip", "-4", "-o", "addr", "show", "dev", "eth0").stdout
    assert f"{ip_a}/{subnet.prefixlen}" in seen

    for name in ("a", "b"):
        containerd.kill(name)
        assert containerd.wait_attached(name) != 0  # killed; ctr has run DEL and deleted the task by now
    assert containerd.reserved_ips() == []
    assert [v for v in veths if link_exists(v)] == []
    assert not list((containerd.cache_dir / "results").glob("*")), "DEL leaves no cached result"
    if containerd.executor is not None:  # the executor, not the shims, ran ctr's plugin calls
        wanted = {(command, containerd.full_id(n)) for command in ("ADD", "DEL") for n in ("a", "b")}
        wait_until(lambda: wanted <= served_bridge_calls(containerd), 10, "the executor's log of ctr's calls")


def served_bridge_calls(containerd: Containerd) -> set[tuple[str, str]]:
    """(command, container id) of the bridge calls the executor answered with success (it logs just after)."""
    return {(e["command"], e["container_id"]) for e in containerd.executor.events("call")
            if e["plugin"] == "bridge" and e["exit_code"] == 0}


def test_a_detached_container_is_never_deleted_from_cni_until_someone_runs_del(containerd: Containerd) -> None:
    containerd.run_detached("d", "sleep", "300")
    containerd.wait_running("d")
    ip_d = containerd.ip_of("d")
    assert ip_d

    containerd.remove("d")  # ctr task kill, task delete, container delete: none of them calls CNI

    assert containerd.ip_of("d") == ip_d, "a detached container's address stays reserved"
    runtime = CniConfig([str(containerd.plugins_dir)], cache_dir=str(containerd.cache_dir))
    [cached] = runtime.get_cached_attachments(containerd.full_id("d"))
    assert (cached.network, cached.ifname) == (containerd.conflist["name"], "eth0")
    netlist = load_file(str(containerd.net_d / "10-pycni.conflist"))
    runtime.del_network_list(netlist, cached.runtime_conf())  # what the runtime should have done
    assert containerd.ip_of("d") == ""
    assert runtime.get_cached_attachments(containerd.full_id("d")) == []


def test_ctr_sees_the_private_config_and_plugins_never_the_hosts(containerd: Containerd) -> None:
    host_before = {path: sorted(os.listdir(path)) if os.path.isdir(path) else None for path in PRIVATE_PATHS}
    containerd.run_attached("p", "sleep", "300")
    containerd.wait_running("p")
    inside = json.loads(containerd.in_namespace("cat", "/etc/cni/net.d/10-pycni.conflist").stdout)
    assert inside == containerd.conflist
    assert containerd.in_namespace("ls", "/etc/cni/net.d").stdout.split() == ["10-pycni.conflist"]
    assert sorted(containerd.in_namespace("ls", "/opt/cni/bin").stdout.split()) == sorted(
        os.listdir(containerd.plugins_dir))
    containerd.kill("p")
    containerd.wait_attached("p")
    assert {path: sorted(os.listdir(path)) if os.path.isdir(path) else None for path in PRIVATE_PATHS} == host_before
