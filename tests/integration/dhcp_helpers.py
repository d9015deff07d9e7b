"""A DHCP world for the dhcp IPAM tests: dnsmasq in its own netns, and dhcp daemons started by pid.

``DhcpServer`` is one dnsmasq serving two links of a server netns: one
whose peer is a port of a host bridge (for the bridge plugin) and one whose
peer is a bare host link (a macvlan master). Lease time 2 minutes (dnsmasq's
minimum) with T1 4 s and T2 8 s, so a lease renews within seconds.
``leases()`` reads dnsmasq's lease file. ``DhcpDaemon`` is a running
``dhcp daemon`` (pycni's, through the installed plugin, or Debian's Go one)
on a socket in a temp dir; ``stop()`` sends SIGTERM and waits.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.host import run
from tests.support.netns import Netns
from tests.support.prerequisites import skip_or_fail
from tests.support.subnets import free_subnet4
from tests.support.wait import wait_until

T1, T2 = 4, 8
CLASSLESS_DST = "192.168.231.0/24"


def require_dnsmasq() -> str:
    path = shutil.which("dnsmasq") or ("/usr/sbin/dnsmasq" if os.path.exists("/usr/sbin/dnsmasq") else None)
    if path is None:
        skip_or_fail("needs dnsmasq (dnsmasq-base)", "kernel test prerequisite missing: needs dnsmasq (dnsmasq-base)")
    return path


@dataclass(frozen=True)
class ServerLease:
    expiry: int
    mac: str
    ip: str
    hostname: str  # "*" when the client sent none
    client_id: str  # colon hex, as dnsmasq writes it


@dataclass
class Segment:
    """One served link: the host end (a bridge port or a macvlan master) and its subnet."""

    host_end: str
    server_end: str
    subnet: ipaddress.IPv4Network

    @property
    def server_ip(self) -> str:
        return str(self.subnet[2])

    def in_range(self, ip: str) -> bool:
        return self.subnet[100] <= ipaddress.IPv4Address(ip) <= self.subnet[199]


@dataclass
class DhcpServer:
    netns: Netns
    root: Path
    bridge: str
    bridged: Segment = field(init=False)
    plain: Segment = field(init=False)
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        tok = uuid.uuid4().hex[:6]
        # A set MAC: else the bridge takes its ports' lowest, which moves as pods come (and CHECK sees it move).
        mac = "02:" + ":".join(f"{b:02x}" for b in os.urandom(5))
        run("ip", "link", "add", self.bridge, "address", mac, "type", "bridge")
        run("ip", "link", "set", self.bridge, "up")
        segments = []
        for name in ("a", "b"):
            host_end, server_end = f"dh{tok}{name}", f"ds{tok}{name}"
            run("ip", "link", "add", host_end, "type", "veth", "peer", "name", server_end)
            run("ip", "link", "set", server_end, "netns", self.netns.name)
            subnet = free_subnet4()
            segment = Segment(host_end, server_end, subnet)
            self.netns.run("ip", "addr", "add", f"{segment.server_ip}/24", "dev", server_end)
            self.netns.run("ip", "link", "set", server_end, "up")
            run("ip", "link", "set", host_end, "up")
            segments.append(segment)
        self.bridged, self.plain = segments
        run("ip", "link", "set", self.bridged.host_end, "master", self.bridge)

    @property
    def lease_file(self) -> Path:
        return self.root / "dnsmasq.leases"

    def start(self, dnsmasq: str) -> None:
        args = [
            dnsmasq,
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--port=0",
            "--user=root",
            "--bind-interfaces",
            f"--pid-file={self.root / 'dnsmasq.pid'}",
            f"--dhcp-leasefile={self.lease_file}",
            f"--log-facility={self.root / 'dnsmasq.log'}",
            "--log-dhcp",
            "--dhcp-authoritative",
            "--no-ping",  # no 3 s ping check of an address before offering it: latency is the client's
            f"--dhcp-option=option:T1,{T1}",
            f"--dhcp-option=option:T2,{T2}",
        ]
        for tag, segment in (("a", self.bridged), ("b", self.plain)):
            net = segment.subnet
            args += [
                f"--interface={segment.server_end}",
                f"--dhcp-range=set:{tag},{net[100]},{net[199]},255.255.255.0,2m",
                f"--dhcp-option=tag:{tag},option:router,{segment.server_ip}",
                # Sent only to clients that ask for it (ipam.request).
                f"--dhcp-option=tag:{tag},option:classless-static-route,{CLASSLESS_DST},{segment.server_ip}",
            ]
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.netns.name, *args], stderr=subprocess.DEVNULL)
        wait_until(lambda: (self.root / "dnsmasq.pid").exists(), 10, "dnsmasq to start")

    def leases(self) -> list[ServerLease]:
        if not self.lease_file.exists():
            return []
        out = []
        for line in self.lease_file.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 5:
                out.append(ServerLease(int(fields[0]), fields[1], fields[2], fields[3], fields[4]))
        return out

    def lease_of(self, ip: str) -> ServerLease | None:
        return next((lease for lease in self.leases() if lease.ip == ip), None)

    def log(self) -> str:
        path = self.root / "dnsmasq.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for segment in (self.bridged, self.plain):
            run("ip", "link", "delete", segment.host_end, check=False)
        run("ip", "link", "delete", self.bridge, check=False)


def client_id_hex(container_id: str, network: str, ifname: str) -> str:
    """The client identifier the reference (and pycni) send, as dnsmasq writes it."""
    raw = b"\0" + f"{container_id}/{network}/{ifname}".encode()
    return ":".join(f"{b:02x}" for b in raw)


@dataclass
class DhcpDaemon:
    """A ``dhcp daemon`` we started; its pid is ours to stop."""

    command: Sequence[str]
    socket: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> DhcpDaemon:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(list(self.command), stdout=log, stderr=log, start_new_session=True)
        log.close()
        wait_until(lambda: self.socket.exists() or self.proc.poll() is not None, timeout, "the dhcp daemon's socket")
        assert self.proc.poll() is None, f"the dhcp daemon exited: {self.log()}"
        return self

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def wait_for_renewal(server: DhcpServer, ip: str, after: int, timeout: float = 60) -> ServerLease:
    """The server's lease of ``ip`` once its expiry moved past ``after`` (a renewal reached the server)."""
    wait_until(
        lambda: (lease := server.lease_of(ip)) is not None and lease.expiry > after, timeout, f"a renewal of {ip}"
    )
    lease = server.lease_of(ip)
    assert lease is not None
    return lease


def now() -> int:
    return int(time.time())
