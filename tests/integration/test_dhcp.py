"""The dhcp IPAM plugin and its daemon against a real DHCP server (dnsmasq in a netns), with bridge and macvlan.

One dnsmasq and one pycni ``dhcp daemon`` (started through the installed
plugin, by pid, on a socket in a temp dir) serve the whole module. Every
test checks what the server saw: its lease file names the pod's address,
MAC and client id after ADD, a later expiry after a renewal, and nothing
once DEL returned (the release left on the pod's interface before the main
plugin deleted it). Debian's Go plugin runs in the same world for comparison.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pycni.spec.result import Result
from tests.integration.dhcp_helpers import (
    CLASSLESS_DST,
    DhcpDaemon,
    DhcpServer,
    Segment,
    client_id_hex,
    require_dnsmasq,
    wait_for_renewal,
)
from tests.integration.linkplugin_helpers import Attach
from tests.support.cnilab import GO_PLUGIN_DIR, CniLab
from tests.support.host import ip_json, ping
from tests.support.netns import Netns, netns_factory
from tests.support.wait import wait_until


@dataclass
class World:
    server: DhcpServer
    lab: CniLab
    daemon: DhcpDaemon
    root: Path

    @property
    def socket(self) -> str:
        return str(self.daemon.socket)

    def state_files(self) -> list[Path]:
        return sorted((self.root / "state").glob("*.json"))

    def pycni_daemon(self) -> DhcpDaemon:
        cmd = [str(self.lab.bin_dir / "dhcp"), "daemon", "-socketpath", self.socket,
               "-statedir", str(self.root / "state"), "-timeout", "20s"]
        return DhcpDaemon(cmd, self.daemon.socket, self.root / "daemon.log")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    dnsmasq = require_dnsmasq()
    root = tmp_path_factory.mktemp("dhcp")
    namespaces = netns_factory("pycni-d-")
    make = next(namespaces)
    server = DhcpServer(make(), root, bridge=f"pdb{uuid.uuid4().hex[:6]}")
    world: World | None = None
    try:
        server.start(dnsmasq)
        lab = CniLab(root=root / "lab", bridge=server.bridge, subnet4="", gateway4="", subnet6="")
        lab.install_pycni("bridge", "macvlan", "dhcp")
        world = World(server, lab, DhcpDaemon([], root / "dhcp.sock", root / "daemon.log"), root)
        world.daemon = world.pycni_daemon().start()
        yield world
    finally:
        if world is not None:
            world.daemon.stop()  # the one running now (a test restarts it)
        server.stop()
        namespaces.close()


def network(
    world: World, kind: str, socket: str | None = None, lab: CniLab | None = None, **options: Any
) -> Attach:
    ipam = {"type": "dhcp", "daemonSocketPath": socket or world.socket, **options}
    plugin: dict[str, Any]
    if kind == "bridge":
        plugin = {"type": "bridge", "bridge": world.server.bridge, "ipam": ipam}
    else:
        plugin = {"type": "macvlan", "master": world.server.plain.host_end, "ipam": ipam}
    return Attach(lab or world.lab, f"dhcp-{kind}-{uuid.uuid4().hex[:4]}", plugin)


def segment(world: World, kind: str) -> Segment:
    return world.server.bridged if kind == "bridge" else world.server.plain


def pod_mac(ns: Netns) -> str:
    (link,) = ip_json("link", "show", "dev", "eth0", netns=ns.name)
    return str(link["address"])


def assert_leased(world: World, kind: str, net: Attach, ns: Netns, container_id: str, result: Result) -> str:
    """The pod's address, after checking the result and the server's lease file agree."""
    seg = segment(world, kind)
    (ipc,) = result.ips
    ip = str(ipc.address.ip)
    assert seg.in_range(ip), f"{ip} is outside the server's range of {seg.subnet}"
    assert ipc.address.network == seg.subnet
    assert str(ipc.gateway) == seg.server_ip
    assert [(str(r.dst), str(r.gw)) for r in result.routes] == [("0.0.0.0/0", seg.server_ip)]
    lease = world.server.lease_of(ip)
    assert lease is not None, f"no lease for {ip} at the server: {world.server.leases()}"
    assert lease.mac == pod_mac(ns)
    assert lease.client_id == client_id_hex(container_id, net.name, "eth0")
    return ip


@pytest.mark.parametrize("kind", ["bridge", "macvlan"])
def test_pods_lease_from_the_server_reach_it_and_release_on_del(
    world: World, make_netns: Callable[[], Netns], kind: str
) -> None:
    net = network(world, kind)
    pods = []
    for _ in range(2):
        ns = make_netns()
        rt = net.rt(ns.path)
        result = net.add(rt)
        pods.append((ns, rt, assert_leased(world, kind, net, ns, rt.container_id, result)))
    (ns_a, rt_a, ip_a), (ns_b, _, ip_b) = pods
    assert ip_a != ip_b
    assert ping(segment(world, kind).server_ip, ns_a.name)
    assert ping(ip_a, ns_b.name)
    net.check(rt_a)

    for _ns, rt, ip in pods:
        net.delete(rt)
        # DEL returned: the release left before the interface went away, so the server forgets the lease.
        wait_until(lambda ip=ip: world.server.lease_of(ip) is None, 10, f"the server to drop {ip}")
        net.delete(rt)  # idempotent
    assert f"{net.name}/eth0: failed to release" not in world.daemon.log()


def test_requested_and_provided_options_reach_the_server(world: World, make_netns: Callable[[], Netns]) -> None:
    net = network(
        world,
        "macvlan",
        request=[{"option": "classless-static-route"}],
        provide=[{"option": "host-name", "fromArg": "K8S_POD_NAME"}],
    )
    ns = make_netns()
    rt = net.rt(ns.path, args=(("IgnoreUnknown", "1"), ("K8S_POD_NAME", "web-1")))
    result = net.add(rt)
    try:
        seg = world.server.plain
        ip = str(result.ips[0].address.ip)
        lease = world.server.lease_of(ip)
        assert lease is not None and lease.hostname == "web-1"
        # RFC 3442: with classless routes the router makes no default route; the gateway is still reported.
        assert [(str(r.dst), str(r.gw)) for r in result.routes] == [(CLASSLESS_DST, seg.server_ip)]
        assert str(result.ips[0].gateway) == seg.server_ip
        routes = ip_json("route", "show", CLASSLESS_DST, netns=ns.name)
        assert [(r["dst"], r["gateway"]) for r in routes] == [(CLASSLESS_DST, seg.server_ip)]
    finally:
        net.delete(rt)


def test_the_daemon_renews_the_lease_at_t1(world: World, make_netns: Callable[[], Netns]) -> None:
    net = network(world, "bridge")
    ns = make_netns()
    rt = net.rt(ns.path)
    ip = str(net.add(rt).ips[0].address.ip)
    first = world.server.lease_of(ip)
    assert first is not None
    try:
        wait_for_renewal(world.server, ip, after=first.expiry, timeout=60)
        assert ping(world.server.bridged.server_ip, ns.name)  # the pod kept its address
    finally:
        net.delete(rt)
    wait_until(lambda: world.server.lease_of(ip) is None, 10, f"the server to drop {ip}")


def test_a_restarted_daemon_resumes_renewing_live_pods(world: World, make_netns: Callable[[], Netns]) -> None:
    net = network(world, "macvlan")
    ns = make_netns()
    rt = net.rt(ns.path)
    ip = str(net.add(rt).ips[0].address.ip)
    assert len(world.state_files()) == 1
    try:
        assert world.daemon.stop() == 0
        assert not world.daemon.socket.exists()
        assert len(world.state_files()) == 1  # kept on disk for the next daemon
        before = world.server.lease_of(ip)
        assert before is not None  # a stopping daemon does not release its pods' leases
        world.daemon = world.pycni_daemon().start()
        wait_for_renewal(world.server, ip, after=before.expiry, timeout=60)
        assert "1 leases resumed" in world.daemon.log()
    finally:
        net.delete(rt)  # through the new daemon
    wait_until(lambda: world.server.lease_of(ip) is None, 10, f"the server to drop {ip}")
    assert world.state_files() == []


def test_debians_go_daemon_forgets_its_leases_when_restarted(
    world: World, make_netns: Callable[[], Netns], tmp_path: Path
) -> None:
    """Go's daemon keeps leases in memory: restarted, it neither renews a live pod's lease nor releases it on DEL."""
    go_lab = CniLab(root=tmp_path / "go", bridge=world.server.bridge, subnet4="", gateway4="", subnet6="")
    go_lab.install_pycni("macvlan")
    go_socket = tmp_path / "go-dhcp.sock"
    go = DhcpDaemon([f"{GO_PLUGIN_DIR}/dhcp", "daemon", "-socketpath", str(go_socket)], go_socket,
                    tmp_path / "go-daemon.log").start()
    try:
        net = network(world, "macvlan", str(go_socket), go_lab)
        ns = make_netns()
        rt = net.rt(ns.path)
        ip = str(net.add(rt).ips[0].address.ip)
        go.stop()
        go_socket.unlink(missing_ok=True)  # its README: remove the socket before starting it (it leaves it behind)
        go.start()
        net.delete(rt)
        time.sleep(1)
        assert world.server.lease_of(ip) is not None  # leaked until it expires at the server
    finally:
        go.stop()


@pytest.mark.parametrize("main", ["pycni", "go"])
@pytest.mark.parametrize("kind", ["bridge", "macvlan"])
def test_against_debians_go_dhcp_plugin(
    world: World, make_netns: Callable[[], Netns], tmp_path: Path, kind: str, main: str
) -> None:
    """Debian's Go dhcp plugin and daemon beside pycni's, under the same main plugin (pycni's or Go's).

    Both lease the same way. The release reaches the server when the main
    plugin calls IPAM DEL before deleting the link, as pycni's bridge and
    macvlan and Go's macvlan do; Go's bridge (1.1.1) deletes the link first,
    so no DHCP client can release on it: both daemons then say why.
    """
    labs = {}
    for who in ("go", "pycni"):
        labs[who] = CniLab(root=tmp_path / who, bridge=world.server.bridge, subnet4="", gateway4="", subnet6="")
        types = (["bridge", "macvlan"] if main == "pycni" else []) + (["dhcp"] if who == "pycni" else [])
        if types:
            labs[who].install_pycni(*types)  # without a dhcp shim, ipam "dhcp" is /usr/lib/cni/dhcp
    go_socket = tmp_path / "go-dhcp.sock"
    go = DhcpDaemon([f"{GO_PLUGIN_DIR}/dhcp", "daemon", "-socketpath", str(go_socket)], go_socket,
                    tmp_path / "go-daemon.log").start()
    try:
        timings, ips, names = {}, {}, {}
        for who, socket in (("go", str(go_socket)), ("pycni", world.socket)):
            net = network(world, kind, socket, labs[who])
            ns = make_netns()
            rt = net.rt(ns.path)
            start = time.monotonic()
            result = net.add(rt)
            added = time.monotonic()
            ips[who], names[who] = assert_leased(world, kind, net, ns, rt.container_id, result), net.name
            deleting = time.monotonic()
            net.delete(rt)
            timings[who] = (added - start) + (time.monotonic() - deleting)
        link_deleted_first = main == "go" and kind == "bridge"
        if link_deleted_first:
            time.sleep(1)
            assert world.server.lease_of(ips["pycni"]) is not None
            assert "failed to release DHCP lease: no such device" in go.log()
            assert f"{names['pycni']}/eth0: failed to release DHCP lease" in world.daemon.log()
        else:
            wait_until(lambda: world.server.lease_of(ips["pycni"]) is None, 10, "the server to drop pycni's lease")
        go_released = world.server.lease_of(ips["go"]) is None
        print(f"\n{kind} under {main}'s plugin: ADD+DEL pycni {timings['pycni']:.3f}s, Go {timings['go']:.3f}s; "
              f"Go's release reached the server: {go_released}")
    finally:
        go.stop()
