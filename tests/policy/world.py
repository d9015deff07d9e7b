"""A one-node pod network in namespaces, with real servers, for policy tests that use packets.

Layout (every name unique per world, everything deleted by ``close``):

- the node: a namespace with bridge ``cni0`` (10.244.1.1/24, fd00:1::1/64)
  and forwarding on; ``bridge-nf-call-ip(6)tables`` on, as the agent sets it,
  so bridged pod-to-pod traffic reaches the ``inet`` forward hook;
- local pods: one namespace each, a veth to ``cni0``, 10.244.1.N and fd00:1::N;
- one remote end: a namespace routed through the node over an underlay veth
  (the node is 192.168.77.1, the remote 192.168.77.2), holding the remote
  node's address and a "remote pod" address 10.244.2.10 on its loopback, so
  traffic from it is routed (not bridged) into the node, as over vxlan.

Every pod and the remote run ``serve.py``: TCP and UDP on ports 80 and 81 of each address.
``probe`` opens a socket inside the source namespace from this process (a
thread that entered it) and says whether a TCP connection or a UDP echo
came through.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pycni.net.netns import run_in_netns

T = TypeVar("T")
SERVE = Path(__file__).with_name("serve.py")
PORTS = (80, 81)
REMOTE_NODE_IP = "192.168.77.2"
REMOTE_POD_IP = "10.244.2.10"
NODE_IP = "192.168.77.1"


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True)


@dataclass
class Endpoint:
    key: str  # "ns/pod", or "remote"
    netns: str
    ips: tuple[str, ...]

    @property
    def path(self) -> str:
        return f"/run/netns/{self.netns}"


@dataclass
class World:
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    pods: dict[str, Endpoint] = field(default_factory=dict)
    remote: Endpoint | None = None
    _namespaces: list[str] = field(default_factory=list)
    _servers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def node(self) -> str:
        return f"pp-{self.tag}-node"

    def _netns(self, suffix: str) -> str:
        name = f"pp-{self.tag}-{suffix}"
        sh("ip", "netns", "add", name)
        self._namespaces.append(name)
        return name

    def in_node(self, *args: str) -> None:
        sh("ip", "netns", "exec", self.node, *args)

    def build(self, pod_keys: Iterable[str]) -> World:
        node = self._netns("node")
        assert node == self.node
        self.in_node("ip", "link", "set", "lo", "up")
        self.in_node("ip", "link", "add", "cni0", "type", "bridge")
        self.in_node("ip", "addr", "add", "10.244.1.1/24", "dev", "cni0")
        self.in_node("ip", "addr", "add", "fd00:1::1/64", "dev", "cni0", "nodad")
        self.in_node("ip", "link", "set", "cni0", "up")
        for knob in ("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
                     "net.bridge.bridge-nf-call-iptables=1", "net.bridge.bridge-nf-call-ip6tables=1"):
            self.in_node("sysctl", "-qw", knob)
        for index, key in enumerate(pod_keys, start=10):
            self._add_pod(key, index)
        self._add_remote()
        for endpoint in [*self.pods.values(), self.remote]:
            assert endpoint is not None
            self._serve(endpoint)
        self._wait_serving()
        return self

    def _add_pod(self, key: str, index: int) -> None:
        ns = self._netns(f"p{index}")
        host_if = f"pv{self.tag}{index}"
        sh("ip", "link", "add", host_if, "netns", self.node, "type", "veth", "peer", "name", "eth0", "netns", ns)
        self.in_node("ip", "link", "set", host_if, "master", "cni0", "up")
        ip4, ip6 = f"10.244.1.{index}", f"fd00:1::{index}"
        for cmd in (("ip", "link", "set", "lo", "up"), ("ip", "addr", "add", f"{ip4}/24", "dev", "eth0"),
                    ("ip", "addr", "add", f"{ip6}/64", "dev", "eth0", "nodad"), ("ip", "link", "set", "eth0", "up"),
                    ("ip", "route", "add", "default", "via", "10.244.1.1"),
                    ("ip", "-6", "route", "add", "default", "via", "fd00:1::1")):
            sh("ip", "netns", "exec", ns, *cmd)
        self.pods[key] = Endpoint(key, ns, (ip4, ip6))

    def _add_remote(self) -> None:
        ns = self._netns("remote")
        sh("ip", "link", "add", "underlay", "netns", self.node, "type", "veth", "peer", "name", "eth0", "netns", ns)
        self.in_node("ip", "addr", "add", f"{NODE_IP}/24", "dev", "underlay")
        self.in_node("ip", "link", "set", "underlay", "up")
        self.in_node("ip", "route", "add", f"{REMOTE_POD_IP}/32", "via", REMOTE_NODE_IP)
        for cmd in (("ip", "link", "set", "lo", "up"), ("ip", "addr", "add", f"{REMOTE_NODE_IP}/24", "dev", "eth0"),
                    ("ip", "addr", "add", f"{REMOTE_POD_IP}/32", "dev", "lo"), ("ip", "link", "set", "eth0", "up"),
                    ("ip", "route", "add", "10.244.1.0/24", "via", NODE_IP)):
            sh("ip", "netns", "exec", ns, *cmd)
        self.remote = Endpoint("remote", ns, (REMOTE_POD_IP, REMOTE_NODE_IP))

    def _serve(self, endpoint: Endpoint) -> None:
        self._servers.append(subprocess.Popen(
            ["ip", "netns", "exec", endpoint.netns, sys.executable, str(SERVE), ",".join(endpoint.ips),
             *map(str, PORTS)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def _wait_serving(self) -> None:
        deadline = time.monotonic() + 10
        remote = self.remote
        assert remote is not None
        for endpoint in self.pods.values():
            while not self.probe(remote, endpoint.ips[0], 81, "TCP", timeout=0.2):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server in {endpoint.key} did not start")
                time.sleep(0.05)

    def probe(self, src: Endpoint, dst_ip: str, port: int, protocol: str, timeout: float = 0.4,
              src_ip: str | None = None) -> bool:
        return run_in_netns(src.path, _connect, dst_ip, port, protocol, timeout, src_ip)

    def probe_all(self, pairs: Iterable[tuple[Endpoint, str, int, str]], timeout: float = 0.4) -> list[bool]:
        return parallel([lambda p=p: self.probe(p[0], p[1], p[2], p[3], timeout) for p in pairs])  # type: ignore[misc]

    def close(self) -> None:
        for server in self._servers:
            server.kill()
            server.wait()
        for name in reversed(self._namespaces):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def parallel(calls: list[Callable[[], T]], workers: int = 24) -> list[T]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda call: call(), calls))


def _connect(dst_ip: str, port: int, protocol: str, timeout: float, src_ip: str | None) -> bool:
    family = socket.AF_INET6 if ":" in dst_ip else socket.AF_INET
    kind = socket.SOCK_STREAM if protocol == "TCP" else socket.SOCK_DGRAM
    with socket.socket(family, kind) as sock:
        sock.settimeout(timeout)
        if src_ip:
            sock.bind((src_ip, 0))
        try:
            if protocol == "TCP":
                sock.connect((dst_ip, port))
                return True
            token = os.urandom(8)
            sock.sendto(token, (dst_ip, port))
            return sock.recv(64) == token
        except OSError:
            return False
