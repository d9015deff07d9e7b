"""pycni's portmap in real chains (bridge + host-local + portmap), proven with packets, both backends.

The world of one test: a pod (bridge + host-local, the Go reference
plugins, and pycni's bridge when it exists) running an HTTP server and a
UDP echo server, a "remote host" namespace joined to the host by a veth
pair on a subnet of its own, and pycni's portmap installed first on
CNI_PATH. Clients connect to the mapped host port from the remote host,
from the host (127.0.0.1 and its own addresses) and from pods (hairpin),
and the reply says which pod answered.

Host-wide state: pycni's portmap table (``inet pycni-portmap``) is only
ours, so portmap tests take a lock and run one at a time; the shared
``CNI-HOSTPORT-*`` iptables chains, which portmap never deletes (like the
reference), are removed by the run-level hook in tests/conftest.py once
every worker has finished (removing them earlier raced with other workers'
plugins). Before
and after comparisons of ``nft list ruleset`` and ``iptables-save`` look
only at lines that are portmap's or name the test's pods, so other tests
changing other tables in parallel do not matter.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pycni.plugins.portmap.conf import Attachment
from pycni.plugins.portmap.iptables_backend import dn_chain_name
from pycni.plugins.portmap.nft_backend import network_id
from pycni.runtime import CniConfig, RuntimeConf, load_network_conf
from pycni.spec.errors import CniError
from pycni.spec.result import Result
from tests.support.cnilab import CniLab
from tests.support.host import run
from tests.support.netns import Netns
from tests.support.subnets import free_subnet

BACKENDS = ["nftables", "iptables"]
MAIN_PLUGINS = ["go-bridge"] + (["pycni-bridge"] if importlib.util.find_spec("pycni.plugins.bridge") else [])
SERIAL_LOCK = "/run/lock/pycni-test-portmap.lock"
COUNTERS = re.compile(r"\[\d+:\d+\]")
HTTP_PORT = 8000  # in the pod
UDP_PORT = 5353  # in the pod

UDP_ECHO = """
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", int(sys.argv[1])))
tag = sys.argv[2].encode()
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(tag + b":" + data, peer)
"""

UDP_CLIENT = """
import socket, sys
host, port, sport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(family, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", sport))
s.settimeout(0.5)
for _ in range(4):
    s.sendto(b"ping", (host, port))
    try:
        print(s.recv(2048).decode())
        break
    except OSError:
        pass
"""


# -- host-wide state --------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _portmap_tests_one_at_a_time() -> Iterator[None]:
    """Serialise portmap tests (xdist workers); shared chains stay until the run ends (see hostrules)."""
    os.makedirs("/run/lock", exist_ok=True)
    serial = os.open(SERIAL_LOCK, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(serial, fcntl.LOCK_EX)
        yield
    finally:
        os.close(serial)


def _iptables(family: int, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return run("iptables" if family == 4 else "ip6tables", "-w", "5", *args, check=check)


def ruleset_lines() -> list[str]:
    """nft's ruleset (no counters) and iptables-save of both families (no counters), as lines."""
    lines = [f"nft {line.strip()}" for line in run("nft", "-s", "list", "ruleset").stdout.splitlines()]
    for tool in ("iptables-save", "ip6tables-save"):
        for line in run(tool, check=False).stdout.splitlines():
            if not line.startswith("#"):
                lines.append(f"{tool} {COUNTERS.sub('', line).strip()}")
    return lines


def portmap_diff(before: list[str], after: list[str], markers: list[str]) -> list[str]:
    """Lines added or removed between two snapshots that name one of this test's ``markers``.

    Only the test's own lines count: other tests (pytest -n) add and remove
    their own mappings in the same shared table meanwhile. The
    CNI-HOSTPORT-* chains are portmap's shared top level, kept by design.
    """
    changed = set(before) ^ set(after)
    return sorted(line for line in changed if "CNI-HOSTPORT-" not in line and any(m in line for m in markers))


def nft_table() -> str:
    done = run("nft", "list", "table", "inet", "pycni-portmap", check=False)
    return done.stdout if done.returncode == 0 else ""


def iptables_nat(family: int = 4) -> str:
    return _iptables(family, "-t", "nat", "-S").stdout


# -- the world of a test -----------------------------------------------------------------


@dataclass
class Remote:
    """A namespace playing a remote host, on a /30 (and /64) of its own to the host."""

    ns: Netns
    host_link: str
    host_ip4: str
    ip4: str
    host_ip6: str
    ip6: str


@pytest.fixture
def remote(make_netns: Any) -> Iterator[Remote]:
    net4 = free_subnet(lambda rng: f"172.29.{rng.randrange(256)}.{rng.randrange(64) * 4}/30")
    net6 = free_subnet(lambda rng: f"fd00:29:{rng.randrange(1 << 16):x}:{rng.randrange(1 << 16):x}::/64")
    token = uuid.uuid4().hex[:6]
    ns = make_netns()
    host_link, peer = f"pmh{token}", f"pmr{token}"
    r = Remote(ns, host_link, str(net4[1]), str(net4[2]), str(net6[1]), str(net6[2]))
    try:
        run("ip", "link", "add", host_link, "type", "veth", "peer", "name", peer)
        run("ip", "link", "set", peer, "netns", ns.name)
        run("ip", "addr", "add", f"{r.host_ip4}/30", "dev", host_link)
        run("ip", "addr", "add", f"{r.host_ip6}/64", "dev", host_link, "nodad")
        run("ip", "link", "set", host_link, "up")
        run("ip", "addr", "add", f"{r.ip4}/30", "dev", peer, netns=ns.name)
        run("ip", "addr", "add", f"{r.ip6}/64", "dev", peer, "nodad", netns=ns.name)
        run("ip", "link", "set", peer, "up", netns=ns.name)
        run("ip", "route", "add", "default", "via", r.host_ip4, netns=ns.name)
        run("ip", "-6", "route", "add", "default", "via", r.host_ip6, netns=ns.name)
        yield r
    finally:
        run("ip", "link", "delete", host_link, check=False)


@dataclass
class Pod:
    ns: Netns
    rt: RuntimeConf
    result: Result
    ips: dict[int, str] = field(default_factory=dict)


class World:
    """One network (bridge + host-local + portmap) and the pods, servers and clients of a test."""

    def __init__(self, lab: CniLab, backend: str, main: str, tmp: Path) -> None:
        self.lab = lab
        self.backend = backend
        self.main = main
        self.tmp = tmp
        self.network = f"pm{uuid.uuid4().hex[:8]}"
        # subnets of our own (see free_subnet), and ports derived from them
        net4 = free_subnet(lambda rng: f"10.{rng.randrange(64, 96)}.{rng.randrange(256)}.0/24")
        net6 = free_subnet(lambda rng: f"fd00:2a:{rng.randrange(1 << 16):x}:{rng.randrange(1 << 16):x}::/64")
        lab.subnet4, lab.gateway4, lab.subnet6 = str(net4), str(net4[1]), str(net6)
        self.cni = CniConfig(lab.cni_path, cache_dir=str(lab.cache_dir))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.pods: list[Pod] = []
        self.to_delete: dict[str, RuntimeConf] = {}  # every attachment ADD was tried for, until its DEL
        self.port_base = 30000 + (int(net4[0]) >> 8) % 3000 * 10

    def port(self, k: int) -> int:
        return self.port_base + k

    def write(self, *, ipv6: bool = False, **portmap: Any) -> None:
        main = self.lab.bridge_plugin(ipv6=ipv6)
        # With br_netfilter loaded, a pod reaching itself through a hostPort is bridged back
        # out of the port it came in on: that needs hairpin mode on the port (as kubenet sets).
        main["hairpinMode"] = True
        pm = {"type": "portmap", "capabilities": {"portMappings": True}, "backend": self.backend, **portmap}
        self.lab.write_conflist(self.network, [main, pm], version="1.0.0")
        self.netlist = load_network_conf(str(self.lab.conf_dir), self.network)

    def add_pod(self, ns: Netns, mappings: list[dict[str, Any]]) -> Pod:
        rt = RuntimeConf(container_id=f"c{uuid.uuid4().hex[:10]}", netns=ns.path, ifname="eth0",
                         capability_args={"portMappings": mappings})
        self.to_delete[rt.container_id] = rt  # a failed ADD needs its DEL too
        result = self.cni.add_network_list(self.netlist, rt)
        pod = Pod(ns, rt, result, {ip.address.version: str(ip.address.ip) for ip in result.ips})
        self.pods.append(pod)
        return pod

    def delete(self, pod: Pod, *, capability_args: dict[str, Any] | None = None) -> None:
        rt = pod.rt if capability_args is None else RuntimeConf(pod.rt.container_id, pod.rt.netns, pod.rt.ifname,
                                                                capability_args=capability_args)
        self.cni.del_network_list(self.netlist, rt)
        self.to_delete.pop(rt.container_id, None)

    def attachment(self, pod: Pod) -> Attachment:
        return Attachment(self.network, pod.rt.container_id, pod.rt.ifname)

    def markers(self) -> list[str]:
        out = [self.network, network_id(self.network)]
        for pod in self.pods:  # (pod IPs are no markers: concurrent test sessions may reuse a subnet)
            out += [dn_chain_name(self.attachment(pod)), pod.rt.container_id]
        return out

    # servers in the pod, killed by PID at teardown

    def serve_http(self, pod: Pod) -> None:
        root = self.tmp / f"www-{pod.ns.name}"
        root.mkdir()
        (root / "whoami").write_text(pod.ns.name)
        self._spawn(pod.ns.name, [sys.executable, "-m", "http.server", str(HTTP_PORT), "--bind", "::"], cwd=root)
        self._wait_listening(pod.ns.name, "t", HTTP_PORT)

    def serve_udp(self, pod: Pod) -> None:
        self._spawn(pod.ns.name, [sys.executable, "-c", UDP_ECHO, str(UDP_PORT), pod.ns.name])
        self._wait_listening(pod.ns.name, "u", UDP_PORT)

    def _spawn(self, netns: str, cmd: list[str], cwd: Path | None = None) -> None:
        proc = subprocess.Popen(["ip", "netns", "exec", netns, *cmd], cwd=cwd,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)

    @staticmethod
    def _wait_listening(netns: str, kind: str, port: int) -> None:
        for _ in range(100):
            if run("ss", f"-Hln{kind}", f"sport = :{port}", netns=netns).stdout.strip():
                return
            time.sleep(0.05)
        raise AssertionError(f"nothing listens on {kind} port {port} in {netns}")

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for rt in list(self.to_delete.values()):  # what a failed test left behind
            with contextlib.suppress(CniError):
                self.cni.del_network_list(self.netlist, rt)
        if self.backend == "nftables" and (self.lab.bin_dir / "portmap").exists():
            # the network's maps and lookup rules outlive its last DEL (as the reference's chains do): drop them
            conf = self.portmap_conf(version="1.1.0")
            conf["cni.dev/valid-attachments"] = []
            self.exec_portmap("GC", conf)

    # direct calls of the portmap binary (one plugin, not the chain)

    def exec_portmap(
        self, command: str, conf: dict[str, Any], pod: Pod | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "CNI_COMMAND": command,
               "CNI_PATH": os.pathsep.join(self.lab.cni_path)}
        if pod is not None:
            env.update(CNI_CONTAINERID=pod.rt.container_id, CNI_NETNS=pod.rt.netns, CNI_IFNAME=pod.rt.ifname)
        return subprocess.run([str(self.lab.bin_dir / "portmap")], input=json.dumps(conf).encode(), env=env,
                              capture_output=True, timeout=60, check=False)

    def assert_gone_after_gc(self, before: list[str]) -> None:
        """After the last DEL only the network's declarations may stay (no pod's line); a GC that keeps no
        attachment (the runtime dropping the network) then leaves nothing of it."""
        pods = [pod.rt.container_id for pod in self.pods]
        left = portmap_diff(before, ruleset_lines(), self.markers())
        assert [line for line in left if any(cid in line for cid in pods)] == []
        conf = self.portmap_conf(version="1.1.0")
        conf["cni.dev/valid-attachments"] = []
        done = self.exec_portmap("GC", conf)
        assert done.returncode == 0, done.stdout
        assert portmap_diff(before, ruleset_lines(), self.markers()) == []

    def portmap_conf(self, pod: Pod | None = None, version: str = "1.0.0", **extra: Any) -> dict[str, Any]:
        conf: dict[str, Any] = {"cniVersion": version, "name": self.network, "type": "portmap",
                                "backend": self.backend, **extra}
        if pod is not None:
            conf["runtimeConfig"] = dict(pod.rt.capability_args)
            conf["prevResult"] = pod.result.to_wire("1.0.0")
        return conf


@pytest.fixture(params=MAIN_PLUGINS)
def main_plugin(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=BACKENDS)
def world(request: pytest.FixtureRequest, lab: CniLab, main_plugin: str, tmp_path: Path) -> Iterator[World]:
    lab.install_pycni("portmap", *(["bridge"] if main_plugin == "pycni-bridge" else []))
    w = World(lab, str(request.param), main_plugin, tmp_path)
    try:
        yield w
    finally:
        w.close()


# -- clients -----------------------------------------------------------------------


def http_get(host: str, port: int, netns: str | None = None, tries: int = 1) -> str | None:
    """GET /whoami from ``host:port`` (in ``netns``); the pod's answer, or None."""
    url_host = f"[{host}]" if ":" in host else host
    for attempt in range(tries):
        done = run("curl", "-sf", "--max-time", "3", f"http://{url_host}:{port}/whoami", netns=netns, check=False)
        if done.returncode == 0:
            return done.stdout
        if attempt + 1 < tries:
            time.sleep(0.5)
    return None


def udp_ask(host: str, port: int, sport: int, netns: str) -> str:
    return run(sys.executable, "-c", UDP_CLIENT, host, str(port), str(sport), netns=netns).stdout.strip()


# -- the tests --------------------------------------------------------------------------


def test_tcp_mapping_from_remote_localhost_host_address_and_hairpin(
    world: World, remote: Remote, make_netns: Any
) -> None:
    before = ruleset_lines()
    world.write()
    host_port = world.port(0)
    a = world.add_pod(make_netns(), [{"hostPort": host_port, "containerPort": HTTP_PORT, "protocol": "tcp"}])
    b = world.add_pod(make_netns(), [])  # a neighbour on the same bridge, no mappings
    world.serve_http(a)
    me = a.ns.name

    assert http_get(remote.host_ip4, host_port, remote.ns.name) == me  # a remote host
    assert http_get("127.0.0.1", host_port) == me  # localhost (route_localnet + masquerade)
    assert http_get(remote.host_ip4, host_port) == me  # the host's own addresses
    assert http_get(world.lab.gateway4, host_port) == me
    assert http_get(world.lab.gateway4, host_port, a.ns.name) == me  # hairpin: the pod via the host
    assert http_get(remote.host_ip4, host_port, a.ns.name) == me
    assert http_get(remote.host_ip4, host_port, b.ns.name) == me  # a neighbour via the host (plugins#469)
    assert http_get(remote.host_ip4, host_port + 1, remote.ns.name) is None  # an unmapped port
    world.cni.check_network_list(world.netlist, a.rt)
    world.cni.check_network_list(world.netlist, b.rt)

    world.delete(a)
    assert http_get(remote.host_ip4, host_port, remote.ns.name) is None
    world.delete(b)
    world.assert_gone_after_gc(before)


@pytest.fixture
def conntrack_on() -> Iterator[None]:
    """Keep connection tracking on in the host netns for the whole test.

    The kernel tracks connections in a namespace only while some rule needs it
    (a NAT chain, a ct match). Portmap's own table comes and goes with the
    pods, and other tests delete theirs, so a test about stale conntrack
    entries holds a ct-using table of its own.
    """
    table = f"pmct{uuid.uuid4().hex[:8]}"
    run("nft", "add", "table", "inet", table)
    try:
        run("nft", "add", "chain", "inet", table, "c", "{ type filter hook prerouting priority -150 ; }")
        run("nft", "add", "rule", "inet", table, "c", "ct", "state", "new", "counter")
        yield
    finally:
        run("nft", "delete", "table", "inet", table, check=False)


def test_udp_mapping_and_its_conntrack_entries(
    world: World, remote: Remote, make_netns: Any, conntrack_on: None
) -> None:
    """UDP flows that began before a mapping take it after ADD, and stop after DEL (same 5-tuple)."""
    world.write()
    host_port, sport = world.port(1), world.port(2)
    pod = world.add_pod(make_netns(), [{"hostPort": host_port, "containerPort": UDP_PORT, "protocol": "udp"}])
    world.serve_udp(pod)
    answer = f"{pod.ns.name}:ping"
    assert udp_ask(remote.host_ip4, host_port, sport, remote.ns.name) == answer

    # DEL of portmap alone (the pod stays up): the flow's conntrack entry goes with the mapping
    done = world.exec_portmap("DEL", world.portmap_conf(pod), pod)
    assert done.returncode == 0, done.stdout
    assert udp_ask(remote.host_ip4, host_port, sport, remote.ns.name) == ""
    # that flow (to the host itself, unanswered) is now tracked without DNAT ...
    listed = run("conntrack", "-L", "-p", "udp", "--orig-port-dst", str(host_port), check=False).stderr
    assert "1 flow entries" in listed
    # ... and ADD flushes it, so the same 5-tuple reaches the pod again
    done = world.exec_portmap("ADD", world.portmap_conf(pod), pod)
    assert done.returncode == 0, done.stdout
    assert json.loads(done.stdout) == pod.result.to_wire("1.0.0")  # prevResult passed through
    assert udp_ask(remote.host_ip4, host_port, sport, remote.ns.name) == answer

    world.delete(pod)
    assert udp_ask(remote.host_ip4, host_port, sport, remote.ns.name) == ""


def test_host_ip_restricts_the_listening_address(world: World, remote: Remote, make_netns: Any) -> None:
    world.write()
    host_port = world.port(3)
    mapping = {"hostPort": host_port, "containerPort": HTTP_PORT, "protocol": "tcp", "hostIP": remote.host_ip4}
    pod = world.add_pod(make_netns(), [mapping])
    world.serve_http(pod)
    assert http_get(remote.host_ip4, host_port, remote.ns.name) == pod.ns.name
    assert http_get(world.lab.gateway4, host_port, remote.ns.name) is None  # another host address
    assert http_get("127.0.0.1", host_port) is None
    world.cni.check_network_list(world.netlist, pod.rt)
    world.delete(pod)


def test_ipv6_mapping_from_remote_and_hairpin(world: World, remote: Remote, make_netns: Any) -> None:
    """IPv6 works from other hosts and pods; [::1] cannot (IPv6 has no route_localnet)."""
    before = ruleset_lines()
    world.write(ipv6=True)
    host_port = world.port(4)
    pod = world.add_pod(make_netns(), [{"hostPort": host_port, "containerPort": HTTP_PORT}])
    assert set(pod.ips) == {4, 6}
    world.serve_http(pod)
    assert http_get(remote.host_ip6, host_port, remote.ns.name, tries=10) == pod.ns.name  # DAD may still run
    assert http_get(remote.host_ip4, host_port, remote.ns.name) == pod.ns.name
    assert http_get(remote.host_ip6, host_port, pod.ns.name, tries=3) == pod.ns.name  # hairpin
    world.cni.check_network_list(world.netlist, pod.rt)
    world.delete(pod)
    assert http_get(remote.host_ip6, host_port, remote.ns.name) is None
    world.assert_gone_after_gc(before)


def test_del_without_runtime_config_removes_the_rules(world: World, make_netns: Any) -> None:
    """A runtime that lost the capability args (or a crash) still gets a clean DEL: rules are found by owner tag."""
    before = ruleset_lines()
    world.write()
    pod = world.add_pod(make_netns(), [{"hostPort": world.port(5), "containerPort": 80, "protocol": "tcp"}])
    tag = world.attachment(pod).tag
    assert tag in (nft_table() if world.backend == "nftables" else iptables_nat())
    world.delete(pod, capability_args={})
    assert tag not in nft_table() + iptables_nat()
    world.assert_gone_after_gc(before)


def test_gc_removes_a_stale_attachments_rules(world: World, remote: Remote, make_netns: Any) -> None:
    world.write()
    port_a, port_b = world.port(6), world.port(7)
    a = world.add_pod(make_netns(), [{"hostPort": port_a, "containerPort": HTTP_PORT}])
    b = world.add_pod(make_netns(), [{"hostPort": port_b, "containerPort": HTTP_PORT}])
    world.serve_http(a)
    world.serve_http(b)
    assert http_get(remote.host_ip4, port_b, remote.ns.name) == b.ns.name

    conf = world.portmap_conf(version="1.1.0")
    conf["cni.dev/valid-attachments"] = [{"containerID": a.rt.container_id, "ifname": "eth0"}]
    done = world.exec_portmap("GC", conf)
    assert done.returncode == 0, done.stdout
    rules = nft_table() + iptables_nat()
    assert world.attachment(b).tag not in rules and world.attachment(a).tag in rules
    assert http_get(remote.host_ip4, port_b, remote.ns.name) is None
    assert http_get(remote.host_ip4, port_a, remote.ns.name) == a.ns.name
    world.delete(a)
    world.delete(b)  # portmap has nothing left of b: still fine


def test_check_detects_a_deleted_rule(world: World, make_netns: Any) -> None:
    world.write()
    host_port = world.port(8)
    pod = world.add_pod(make_netns(), [{"hostPort": host_port, "containerPort": 80, "protocol": "tcp"}])
    world.cni.check_network_list(world.netlist, pod.rt)
    if world.backend == "nftables":
        ports4 = f"{network_id(world.network)}_ports4"
        run("nft", "delete", "element", "inet", "pycni-portmap", ports4, f"{{ tcp . {host_port} }}")
    else:
        chain = dn_chain_name(world.attachment(pod))
        (dnat,) = [line for line in iptables_nat().splitlines() if line.startswith(f"-A {chain}") and "DNAT" in line]
        _iptables(4, "-t", "nat", "-D", *shlex.split(dnat)[1:], check=True)
    with pytest.raises(CniError) as err:
        world.cni.check_network_list(world.netlist, pod.rt)
    assert 'type="portmap"' in str(err.value) and str(host_port) in str(err.value)
    world.delete(pod)
    assert world.attachment(pod).tag not in nft_table() + iptables_nat()


def test_conditions_limit_who_is_forwarded(world: World, remote: Remote, make_netns: Any) -> None:
    if world.backend == "nftables":
        world.write(conditionsV4=["ip", "saddr", "!=", remote.ip4])
    else:
        world.write(conditionsV4=["!", "-s", remote.ip4])
    host_port = world.port(9)
    pod = world.add_pod(make_netns(), [{"hostPort": host_port, "containerPort": HTTP_PORT}])
    world.serve_http(pod)
    assert http_get(remote.host_ip4, host_port, remote.ns.name) is None
    assert http_get("127.0.0.1", host_port) == pod.ns.name
    world.delete(pod)


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"hostPort": 70000, "containerPort": 80}, "runtimeConfig.portMappings[0].hostPort: 70000 is out of range"),
        ({"hostPort": 80, "containerPort": 80, "protocol": "icmp"}, "runtimeConfig.portMappings[0].protocol: 'icmp'"),
        ({"hostPort": 80, "containerPort": 80, "hostIP": "300.1.1.1"}, "runtimeConfig.portMappings[0].hostIP: '300"),
        ({"hostPort": 80, "containerPort": 80, "hostIP": "2001:db8::1"}, "hostIP: '2001:db8::1' is IPv6 but the"),
    ],
)
def test_bad_mappings_are_code_7_naming_the_field(
    lab: CniLab, make_netns: Any, tmp_path: Path, mapping: dict[str, Any], message: str
) -> None:
    lab.install_pycni("portmap")
    world = World(lab, "nftables", "go-bridge", tmp_path)
    try:
        world.write()
        before = nft_table()
        with pytest.raises(CniError) as err:
            world.add_pod(make_netns(), [mapping])
        assert err.value.code == 7
        assert message in str(err.value) and 'type="portmap"' in str(err.value)
        added = set(nft_table().splitlines()) - set(before.splitlines())
        assert [line for line in added if any(m in line for m in world.markers())] == []
        # the runtime's DEL after a failed ADD passes portmap (same bad config) and releases the IP
        (rt,) = world.to_delete.values()
        world.cni.del_network_list(world.netlist, rt)
        assert lab.reserved_ips(world.network) == []
    finally:
        world.close()


def test_a_taken_host_port_is_refused(lab: CniLab, make_netns: Any, tmp_path: Path) -> None:
    lab.install_pycni("portmap")
    world = World(lab, "nftables", "go-bridge", tmp_path)
    try:
        world.write()
        mapping = {"hostPort": world.port(0), "containerPort": 80}
        first = world.add_pod(make_netns(), [mapping])
        with pytest.raises(CniError) as err:
            world.add_pod(make_netns(), [mapping])
        assert err.value.code == 7 and f"tcp host port {world.port(0)} is already forwarded" in str(err.value)
        assert first.rt.container_id in str(err.value)
    finally:
        world.close()
