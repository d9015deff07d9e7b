"""The wireguard backend on a lab (one lab of 3 nodes for the module, wireguard-go here: no WireGuard module).

Pods talk across nodes, and the underlay (captured with tcpdump on the lab's
underlay bridge) carries their traffic only as WireGuard UDP: a plaintext
marker sent between pods over TCP and UDP never appears on it, neither while
a peer's key is unknown nor while a peer's wireguard-go is being replaced
after a kill -9. An agent restart loses no ping, a key rotation is followed
by every peer, and a node that leaves is removed as a peer everywhere.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from pycni.cluster.backends.wireguard_keys import from_base64, public_key, to_base64, to_hex
from pycni.cluster.lab import PREFIX, Lab
from pycni.cluster.lab_wireguard import supervisor
from pycni.net.wireguard_go import is_wireguard_go, socket_path
from pycni.net.wireguard_uapi import DeviceState, get_device
from tests.cluster.conftest import _missing, build_lab, leftovers
from tests.support.prerequisites import skip_or_fail
from tests.support.wait import wait_until

PORT = 51820
ETCD_PORT = 2379


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    reason = _missing() or next((f"needs '{t}'" for t in ("wireguard-go", "wg", "tcpdump") if not _which(t)), None)
    if reason is not None:
        skip_or_fail(reason, f"wireguard lab prerequisite missing: {reason}")
    lab = build_lab(tmp_path_factory.mktemp("lab-wireguard"), "wireguard", nodes=3, pods_per_node=1)
    yield lab
    lab_id = lab.state.id
    wireguard_gos = [supervisor(lab.state, n).recorded_pid() for n in lab.state.nodes]
    lab.down()
    assert leftovers(lab_id) == []
    assert not [pid for pid in wireguard_gos if pid is not None and is_wireguard_go(pid, "pycni-wg")]


def _which(tool: str) -> bool:
    import shutil

    return shutil.which(tool) is not None


def device(lab: Lab, node: str) -> DeviceState:
    pid = supervisor(lab.state, node).running_pid()
    assert pid is not None, f"no wireguard-go running for {node}"
    return get_device(socket_path(pid, "pycni-wg"))


def lease_key_of(lab: Lab, node: str) -> str:
    from pycni.cluster.subnets import SubnetManager

    leases = lab.with_kv(lambda kv: SubnetManager(kv, PREFIX).list_leases()[0])
    return str(next(lease.backend_data["PublicKey"] for lease in leases if lease.node == node))


class Capture:
    """tcpdump on a node's underlay device (its eth0, where everything it sends to other nodes leaves),
    written to a pcap file. ``--immediate-mode``: without it, packets still in the kernel's capture ring
    when tcpdump stops are lost; ``stop`` checks that the kernel dropped none, so a clean capture is a
    complete one."""

    def __init__(self, lab: Lab, path: Path, node: str) -> None:
        self.lab, self.path = lab, path
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", lab.state.nodes[node].netns, "tcpdump", "-i", "eth0", "--immediate-mode",
             "-B", "8192", "-U", "-s", "0", "-n", "-w", str(path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        lines: list[str] = []
        while len(lines) < 3 and not any("listening on" in line for line in lines):  # once the capture runs
            lines.append(self.proc.stderr.readline())
        if not any("listening on" in line for line in lines):
            self.proc.kill()
            self.proc.communicate()
            raise AssertionError(f"tcpdump did not start: {lines}")

    def stop(self) -> None:
        time.sleep(0.5)  # the last packets of the traffic just sent
        self.proc.terminate()
        _, err = self.proc.communicate(timeout=10)
        assert "\n0 packets dropped by kernel" in f"\n{err}", err

    def read(self, expression: str) -> list[str]:
        out = subprocess.run(["tcpdump", "-r", str(self.path), "-n", expression], capture_output=True, text=True,
                             check=True).stdout
        return out.splitlines()

    def contains(self, marker: bytes) -> bool:
        return marker in self.path.read_bytes()

    def plaintext(self) -> list[str]:
        """IPv4 packets that are neither WireGuard nor etcd (ARP and IPv6 router solicitations aside)."""
        return self.read(f"ip and not (udp port {PORT}) and not (tcp port {ETCD_PORT})")


@contextlib.contextmanager
def capture(lab: Lab, tmp_path: Path, node: str = "n1") -> Iterator[Capture]:
    cap = Capture(lab, tmp_path / f"underlay-{node}.pcap", node)
    try:
        yield cap
    finally:
        cap.stop()


SERVER = (
    "import socket,sys\n"
    "t=socket.socket();t.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);t.bind(('0.0.0.0',7000));t.listen()\n"
    "u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);u.bind(('0.0.0.0',7001))\n"
    "print('ready',flush=True)\n"
    "c,_=t.accept();got=c.recv(100);c.sendall(got);c.close()\n"
    "data,peer=u.recvfrom(100);u.sendto(data,peer);print(got.decode(),data.decode(),flush=True)\n"
)
CLIENT = (
    "import socket,sys\n"
    "m=sys.argv[2].encode();s=socket.create_connection((sys.argv[1],7000),timeout=10);s.sendall(m)\n"
    "assert s.recv(100)==m\n"
    "u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);u.settimeout(2)\n"
    "for _ in range(5):\n"
    "    u.sendto(m,(sys.argv[1],7001))\n"
    "    try:\n"
    "        assert u.recv(100)==m;break\n"
    "    except socket.timeout:\n"
    "        pass\n"
    "else:\n"
    "    raise SystemExit('no udp echo')\n"
    "print('ok')\n"
)


def exchange(lab: Lab, client: str, server: str, marker: str) -> None:
    """A TCP and a UDP echo of ``marker`` between two pods."""
    srv = lab.state.pods[server]
    proc = subprocess.Popen(["ip", "netns", "exec", srv.netns, sys.executable, "-c", SERVER], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        out = lab.exec(client, [sys.executable, "-c", CLIENT, str(srv.ip), marker], timeout=60)
        assert out.stdout.strip() == "ok", out.stderr
        assert proc.stdout.readline().split() == [marker, marker]
    finally:
        proc.kill()
        proc.communicate()


def send_blind(lab: Lab, client: str, dst: str, marker: str, count: int = 20, interval: float = 0.05) -> None:
    """Fire UDP datagrams carrying ``marker`` at ``dst`` (no answer expected), from a pod."""
    script = ("import socket,sys,time\nu=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
              f"for _ in range({count}):\n"
              "    try:\n"
              f"        u.sendto(sys.argv[2].encode(),(sys.argv[1],7001))\n"
              "    except OSError:\n"
              "        pass\n"
              f"    time.sleep({interval})\n")
    lab.exec(client, [sys.executable, "-c", script, dst, marker], timeout=60)


def lost_pings(out: str) -> int:
    for line in out.splitlines():
        if "packets transmitted" in line:
            sent, received = int(line.split()[0]), int(line.split()[3])
            return sent - received
    raise AssertionError(out)


# -- the tests ------------------------------------------------------------------------


def test_pods_ping_across_nodes_with_keys_in_the_leases(lab: Lab) -> None:
    pods = sorted(lab.state.pods.values(), key=lambda p: p.name)
    for a in pods:
        for b in pods:
            if a.node != b.node:
                assert lab.ping(a.name, str(b.ip)), (a.name, b.name)
    for node in lab.state.nodes:
        state = device(lab, node)
        published = from_base64(lease_key_of(lab, node))
        assert state.private_key is not None and public_key(bytes.fromhex(state.private_key)) == published
        others = {n for n in lab.state.nodes if n != node}
        assert {to_base64(bytes.fromhex(k)) for k in state.peers} == {lease_key_of(lab, n) for n in others}
        for peer in state.peers.values():  # the peer's subnet and its node address
            assert len(peer.allowed_ips) == 2 and any(a.endswith("/32") for a in peer.allowed_ips)
        key_file = Path(lab.state.node_dir(node)) / "run" / "wireguard" / "private.key"
        assert key_file.stat().st_mode & 0o777 == 0o600


def test_pod_mtu_leaves_room_for_wireguard_and_a_full_size_df_ping_crosses(lab: Lab) -> None:
    a, b = lab.state.pods["n1-p1"], lab.state.pods["n2-p1"]
    mtu = int(lab.exec(a.name, ["cat", "/sys/class/net/eth0/mtu"], check=True).stdout)
    assert mtu == 1500 - 60
    assert lab.exec(a.name, ["ping", "-M", "do", "-s", str(mtu - 28), "-c", "1", "-W", "5", str(b.ip)]).returncode == 0


def test_the_underlay_carries_only_wireguard_never_a_plaintext_marker(lab: Lab, tmp_path: Path) -> None:
    marker = "PLAINTEXT-" + os.urandom(6).hex()
    with capture(lab, tmp_path) as cap:
        exchange(lab, "n1-p1", "n3-p1", marker)
        exchange(lab, "n2-p1", "n1-p1", marker + "b")
    assert not cap.contains(marker.encode())
    assert cap.plaintext() == []
    assert len(cap.read(f"udp port {PORT}")) >= 8  # the capture saw the (encrypted) exchange


def test_traffic_to_a_peer_without_a_key_drops_instead_of_leaking(lab: Lab, tmp_path: Path) -> None:
    from pycni.cluster.subnets import SubnetManager

    ghost = lab.with_kv(lambda kv: SubnetManager(kv, PREFIX).acquire("ghost", IPv4Address("192.168.77.250"), {}))
    try:
        wait_until(lambda: "blackhole" in lab.exec("n1", ["ip", "route", "get", str(ghost.subnet[5])]).stdout
                   or lab.exec("n1", ["ip", "route", "get", str(ghost.subnet[5])]).returncode != 0, 10,
                   "n1 to know the ghost lease")
        marker = "UNKEYED-" + os.urandom(6).hex()
        with capture(lab, tmp_path) as cap:
            send_blind(lab, "n1-p1", str(ghost.subnet[5]), marker)
        assert not cap.contains(marker.encode())
        assert cap.plaintext() == []
        assert str(ghost.subnet) not in {str(s) for s in lab.owned_routes("n1")}
    finally:
        lab.with_kv(lambda kv: SubnetManager(kv, PREFIX).release("ghost"))


def test_kill_9_of_wireguard_go_is_repaired_with_the_same_key_and_nothing_leaks(lab: Lab, tmp_path: Path) -> None:
    wg = supervisor(lab.state, "n2")
    old_pid = wg.running_pid()
    assert old_pid is not None
    key_before = device(lab, "n2").private_key
    marker = "KILLED-" + os.urandom(6).hex()
    with capture(lab, tmp_path, "n2") as cap:  # n2's own pod sends while n2 has no WireGuard
        os.kill(old_pid, 9)
        send_blind(lab, "n2-p1", str(lab.state.pods["n1-p1"].ip), marker, count=60)
        wait_until(lambda: wg.running_pid() not in (None, old_pid), 30, "a new wireguard-go on n2")
        wait_until(lambda: lab.ping("n1-p1", str(lab.state.pods["n2-p1"].ip)), 30, "n1-p1 to reach n2-p1 again")
    assert not cap.contains(marker.encode())
    assert cap.plaintext() == []
    assert device(lab, "n2").private_key == key_before
    assert from_base64(lease_key_of(lab, "n2")) == public_key(bytes.fromhex(key_before or ""))


def test_an_agent_restart_under_a_running_ping_loses_nothing(lab: Lab) -> None:
    a, b = lab.state.pods["n1-p1"], lab.state.pods["n2-p1"]
    pid_before = supervisor(lab.state, "n2").running_pid()
    pinger = subprocess.Popen(["ip", "netns", "exec", a.netns, "ping", "-i", "0.1", "-c", "50", "-W", "5", str(b.ip)],
                              stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    lab.stop_agent("n2")
    time.sleep(0.5)
    lab.start_agent("n2")
    out, _ = pinger.communicate(timeout=60)
    assert lost_pings(out) == 0, out
    assert supervisor(lab.state, "n2").running_pid() == pid_before  # adopted, not restarted
    wait_until(lab.converged, 30)


def test_rotate_key_gives_a_new_key_that_every_peer_follows(lab: Lab) -> None:
    from pycni.cli.wireguard import rotate_key

    a, b = lab.state.pods["n1-p1"], lab.state.pods["n3-p1"]
    pinger = subprocess.Popen(["ip", "netns", "exec", a.netns, "ping", "-i", "0.1", "-c", "60", "-W", "5", str(b.ip)],
                              stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    old, new, _ = lab.with_kv(lambda kv: rotate_key(kv, PREFIX, "n3", timeout=60))
    out, _ = pinger.communicate(timeout=60)
    assert old != new and lease_key_of(lab, "n3") == new
    assert device(lab, "n3").private_key is not None
    assert to_base64(public_key(bytes.fromhex(device(lab, "n3").private_key or ""))) == new
    for node in ("n1", "n2"):
        def learnt(node: str = node) -> bool:
            return to_hex(from_base64(new)) in device(lab, node).peers

        wait_until(learnt, 30, f"{node} to learn the new key")
        assert to_hex(from_base64(old)) not in device(lab, node).peers
    assert lab.ping(a.name, str(b.ip))
    print(f"rotation: {lost_pings(out)} of 60 pings lost at 0.1s intervals")


def test_a_node_that_leaves_is_removed_as_a_peer_everywhere(lab: Lab) -> None:
    lab.add_node("gone", wait=60)
    lab.add_pod("gone", "gone-p1")
    assert lab.ping("n1-p1", str(lab.state.pods["gone-p1"].ip))
    gone_key = to_hex(from_base64(lease_key_of(lab, "gone")))
    others = [n for n in lab.state.nodes if n != "gone"]
    assert all(gone_key in device(lab, n).peers for n in others)
    lab.remove_node("gone")
    wait_until(lambda: not any(gone_key in device(lab, n).peers for n in others), 30, "peers to drop 'gone'")
    wait_until(lab.converged, 30)
