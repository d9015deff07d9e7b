"""The podman fixture proven with Debian's Go reference plugins (/usr/lib/cni).

Two containers on one podman-created network (bridge + portmap + firewall +
tuning, host-local IPAM) get addresses from its subnet and ping each other;
``podman rm`` releases the addresses and removes the veths and netns. The same
tests with pycni's plugins only need a different ``podman_plugin_dirs``.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.host import link_exists, links_with_master, netns_names
from tests.support.podman import GO_PLUGIN_DIR, Podman

pytestmark = [pytest.mark.interop, pytest.mark.root]


def test_two_containers_reach_each_other_and_rm_releases_addresses(podman: Podman) -> None:
    netns_before = netns_names()
    net = podman.network_create()
    assert [p["type"] for p in net.conflist["plugins"]] == ["bridge", "portmap", "firewall", "tuning"]
    assert net.conflist["plugins"][0]["ipam"]["type"] == "host-local"

    a_id = podman.start("a", net.name)
    b_id = podman.start("b", net.name)
    ip_a, ip_b = podman.ip_of("a"), podman.ip_of("b")
    subnet = ipaddress.ip_network(net.subnet)
    assert ipaddress.ip_address(ip_a) in subnet
    assert ipaddress.ip_address(ip_b) in subnet
    assert len({ip_a, ip_b, net.gateway}) == 3

    # host-local's reservations and libcni's result cache live in the private /var/lib/cni.
    assert net.reserved_ips() == sorted([ip_a, ip_b])
    results = podman.cache_dir / "results"
    assert {p.name for p in results.iterdir()} >= {f"{net.name}-{a_id}-eth0", f"{net.name}-{b_id}-eth0"}
    cached = json.loads((results / f"{net.name}-{a_id}-eth0").read_text())
    assert cached["containerId"] == a_id

    # The container sees the address podman reports, on eth0, with the default route via the bridge.
    addr = podman.exec("a", "ip", "-4", "addr", "show", "dev", "eth0", check=True).stdout
    assert f"inet {ip_a}/{subnet.prefixlen}" in addr
    assert f"default via {net.gateway}" in podman.exec("a", "ip", "route", check=True).stdout

    for src, dst in (("a", ip_b), ("b", ip_a)):
        ping = podman.exec(src, "ping", "-c1", "-W2", dst)
        assert ping.returncode == 0, ping.stdout + ping.stderr
    assert podman.exec("a", "ping", "-c1", "-W2", net.gateway).returncode == 0

    # Host side: the bridge with exactly our two veths; the netns are private to the environment.
    veths = links_with_master(net.bridge)
    assert len(veths) == 2
    private_netns = {p.name for p in podman.netns_dir.iterdir()}
    assert len(private_netns) == 2
    assert not private_netns & netns_names()

    podman.rm("a", "b")

    assert net.reserved_ips() == []
    assert not [p.name for p in results.iterdir() if p.name.startswith(f"{net.name}-")]
    assert list(podman.netns_dir.iterdir()) == []
    assert [v for v in veths if link_exists(v)] == []
    assert links_with_master(net.bridge) == []
    # Other tests may add and remove named netns meanwhile; podman's would be called netns-<uuid>.
    assert not {n for n in netns_names() - netns_before if n.startswith("netns-")}
    # The bridge plugin never deletes the bridge; `podman network rm` does.
    assert link_exists(net.bridge)
    podman.network_remove(net.name)
    assert not link_exists(net.bridge)


def test_a_freed_address_is_reused_by_the_next_container(podman: Podman) -> None:
    net = podman.network_create(subnet=None)
    podman.start("c1", net.name)
    first = podman.ip_of("c1")
    podman.rm("c1")
    assert net.reserved_ips() == []
    podman.start("c2", net.name)
    # host-local continues after last_reserved_ip, so the next address is a new one, and only it is held.
    assert net.reserved_ips() == [podman.ip_of("c2")]
    assert podman.ip_of("c2") != first
    podman.rm("c2")
    assert net.reserved_ips() == []


def test_environment_teardown_removes_bridge_cgroups_and_namespace(make_podman: Callable[..., Podman]) -> None:
    pm = make_podman([GO_PLUGIN_DIR])
    net = pm.network_create(plugins=("bridge",))  # a chain podman did not write, trimmed by us
    assert [p["type"] for p in net.conflist["plugins"]] == ["bridge"]
    pm.start("x", net.name)
    pm.start("y", net.name)
    assert pm.exec("x", "ping", "-c1", "-W2", pm.ip_of("y")).returncode == 0
    holder = pm._holder
    assert holder is not None

    problems = pm.close()  # containers still running: close() must remove them

    assert [p for p in problems if not p.startswith("left in place:")] == []
    assert not link_exists(net.bridge)
    assert holder.poll() is not None
    assert list(pm.netns_dir.iterdir()) == []
    assert net.reserved_ips() == []
    assert not list(pm.runc_root.iterdir())
    assert not [d for d in _cgroup_paths(pm.cgroup_parent) if d.exists()]
    assert pm.close() == []  # idempotent


def _cgroup_paths(parent: str) -> list[Path]:
    base = Path("/sys/fs/cgroup")
    return [h / parent.strip("/") for h in base.iterdir() if h.is_dir()] + [base / parent.strip("/")]
