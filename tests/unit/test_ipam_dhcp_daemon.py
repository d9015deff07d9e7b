"""pycni.ipam.dhcp daemon side: leases allocated, kept, released and resumed, against a scripted server.

No kernel: the daemon's link opener hands out ``FakeLink``s to one
``FakeServer``, time is a ``FakeClock`` the tests move, and a netns is any
file that exists. The plugin's RPC runs over a real unix socket.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from pycni import skel
from pycni.ipam.dhcp import plugin
from pycni.ipam.dhcp.client import Timing
from pycni.ipam.dhcp.daemon import Leases, _Handler, _Server, answer
from pycni.ipam.dhcp.lease import Lease
from pycni.ipam.dhcp.link import LinkUnavailable
from pycni.ipam.dhcp.packet import MessageType, Opt
from pycni.ipam.dhcp.store import LeaseStore
from pycni.spec.errors import CniError, PluginNotAvailable, TryAgainLater, UnknownContainer
from tests.support.fake_dhcp import SERVER_IP, SERVER_MAC, FakeClock, FakeLink, FakeServer
from tests.support.wait import wait_until


class World:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.server = FakeServer(lease_time=120, t1=60, t2=105)
        self.clock = FakeClock()
        self.netns = root / "netns-a"
        self.netns.touch()
        self.store = LeaseStore(root / "state")
        self.opened: list[tuple[str, str]] = []
        self.unavailable = False
        self.leases = self.make_leases()

    def open(self, netns: str, ifname: str) -> AbstractContextManager[FakeLink]:
        if self.unavailable:
            raise LinkUnavailable(f"failed to open a DHCP socket on '{ifname}' in netns '{netns}': no such device")
        self.opened.append((netns, ifname))
        return FakeLink(self.server, clock=self.clock)

    def make_leases(self) -> Leases:
        return Leases(self.store, timing=Timing(timeout=10), opener=self.open, clock=self.clock, monotonic=self.clock)

    def call(self, method: str, container: str = "ctr1", **extra: Any) -> dict[str, Any]:
        return {
            "method": method,
            "containerID": container,
            "netns": str(self.netns),
            "ifName": "eth0",
            "args": "K8S_POD_NAME=web-1",
            "config": {
                "cniVersion": "1.0.0",
                "name": "net1",
                "ipam": {"type": "dhcp", "provide": [{"option": "host-name", "fromArg": "K8S_POD_NAME"}]},
            },
            **extra,
        }

    def stored(self) -> list[Lease]:
        return self.store.load_all()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.leases.shutdown()


def test_allocate_acquires_stores_and_answers_the_lease(world: World) -> None:
    result = world.leases.allocate(world.call("allocate"))
    wire = result.to_wire()
    assert wire["ips"] == [{"address": "10.9.0.100/24", "gateway": str(SERVER_IP)}]
    assert wire["routes"] == [{"dst": "0.0.0.0/0", "gw": str(SERVER_IP)}]
    (stored,) = world.stored()
    assert stored.client_id == b"\0ctr1/net1/eth0" and stored.netns == str(world.netns)
    assert stored.bound_at == world.clock.now and stored.server_mac == SERVER_MAC
    assert world.server.seen[0].message.option(Opt.HOST_NAME) == b"web-1"
    # ADD again: the same lease, nothing sent.
    assert world.leases.allocate(world.call("allocate")).to_wire() == wire
    assert world.server.kinds() == [MessageType.DISCOVER, MessageType.REQUEST]


def test_release_sends_dhcprelease_before_answering_and_forgets_the_lease(world: World) -> None:
    world.leases.allocate(world.call("allocate"))
    world.leases.release(world.call("release"))
    assert world.server.kinds()[-1] is MessageType.RELEASE
    assert world.server.leases == {} and world.stored() == [] and world.leases.leases() == []
    world.leases.release(world.call("release"))  # nothing held: fine
    assert world.server.kinds().count(MessageType.RELEASE) == 1


def test_release_without_the_interface_still_forgets_the_lease(world: World, caplog) -> None:
    world.leases.allocate(world.call("allocate"))
    world.unavailable = True
    world.leases.release(world.call("release"))
    assert world.stored() == []
    assert "failed to release DHCP lease 10.9.0.100/24" in caplog.text


def test_check_needs_a_held_lease(world: World) -> None:
    with pytest.raises(UnknownContainer, match="holds no lease for 'ctr1/net1/eth0'"):
        world.leases.check(world.call("check"))
    world.leases.allocate(world.call("allocate"))
    world.leases.check(world.call("check"))


def test_a_server_that_never_answers_fails_add_with_try_again_later(world: World) -> None:
    world.server.silent = True
    with pytest.raises(TryAgainLater, match="failed to acquire a DHCP lease on 'eth0': no DHCPOFFER within 10s"):
        world.leases.allocate(world.call("allocate"))
    assert world.stored() == []


def test_a_missing_netns_fails_add_before_anything_is_sent(world: World) -> None:
    with pytest.raises(CniError, match="netns '/nonexistent/ns' does not exist"):
        world.leases.allocate(world.call("allocate", netns="/nonexistent/ns"))
    assert world.server.seen == []


def held(world: World) -> Lease:
    (lease,) = world.leases.leases()
    return lease


def advance_to(world: World, when: float) -> None:
    world.clock.now = when
    for keeper in list(world.leases._keepers.values()):
        keeper.wake()


def test_the_keeper_renews_at_t1_by_unicast_and_saves_the_new_lease(world: World) -> None:
    world.leases.allocate(world.call("allocate"))
    first = held(world)
    advance_to(world, first.renew_at)
    wait_until(lambda: held(world).bound_at == first.renew_at, 10, "the renewal")
    renew = world.server.seen[-1]
    assert renew.kind is MessageType.REQUEST and renew.message.ciaddr == IPv4Address("10.9.0.100")
    assert (renew.dst_mac, renew.dst_ip) == (SERVER_MAC, SERVER_IP)
    assert world.stored()[0].bound_at == first.renew_at


def test_the_keeper_rebinds_at_t2_when_renewals_go_unanswered(world: World, caplog) -> None:
    world.leases.allocate(world.call("allocate"))
    first = held(world)
    world.server.silent = True
    advance_to(world, first.renew_at)
    wait_until(lambda: "renew failed: no DHCPACK" in caplog.text, 10, "a renewal attempt to fail")
    world.server.silent = False
    advance_to(world, first.rebind_at)
    wait_until(lambda: held(world).bound_at > first.bound_at, 10, "the rebinding")
    rebind = world.server.seen[-1]
    assert rebind.dst_ip == IPv4Address("255.255.255.255") and rebind.message.ciaddr == IPv4Address("10.9.0.100")


def test_a_nak_on_renewal_means_a_new_acquisition(world: World, caplog) -> None:
    world.leases.allocate(world.call("allocate"))
    first = held(world)
    world.server.refuse = True
    advance_to(world, first.renew_at)
    wait_until(lambda: "renew failed: the DHCP server refused" in caplog.text, 10, "the refused renewal")
    assert world.server.kinds()[2:] == [MessageType.REQUEST, *[MessageType.DISCOVER, MessageType.REQUEST] * 2]
    world.server.refuse = False
    advance_to(world, first.renew_at + 40)  # the retry, still before T2
    wait_until(lambda: held(world).bound_at > first.bound_at, 10, "the renewed lease")


def test_a_keeper_whose_netns_is_gone_forgets_the_lease(world: World) -> None:
    world.leases.allocate(world.call("allocate"))
    world.netns.unlink()
    advance_to(world, held(world).renew_at)
    wait_until(lambda: world.stored() == [] and world.leases.leases() == [], 10, "the lease to be forgotten")
    with pytest.raises(UnknownContainer):
        world.leases.check(world.call("check"))


def test_a_new_daemon_resumes_the_stored_leases_of_live_netns(world: World, tmp_path: Path) -> None:
    world.leases.allocate(world.call("allocate"))
    gone = tmp_path / "netns-b"
    gone.touch()
    world.leases.allocate(world.call("allocate", container="ctr2", netns=str(gone)))
    world.leases.shutdown()  # a daemon stopping: no release, the store stays
    assert MessageType.RELEASE not in world.server.kinds() and len(world.stored()) == 2
    gone.unlink()
    (world.store.directory / "junk.json").write_text("{not json")
    world.leases = world.make_leases()
    assert world.leases.resume() == 1
    assert [lease.container_id for lease in world.stored()] == ["ctr1"]
    advance_to(world, held(world).renew_at)  # and it keeps it
    wait_until(lambda: held(world).bound_at == world.clock.now, 10, "the resumed lease's renewal")
    world.leases.release(world.call("release"))
    assert world.server.kinds()[-1] is MessageType.RELEASE


def test_answer_turns_errors_into_cni_error_objects(world: World) -> None:
    assert answer(world.leases, ["x"])["error"]["code"] == 7
    assert answer(world.leases, {"method": "fly"})["error"]["msg"] == "unknown method 'fly'"
    assert answer(world.leases, world.call("check"))["error"]["code"] == 3
    assert answer(world.leases, world.call("status")) == {"result": {}}
    assert answer(world.leases, world.call("allocate"))["result"]["ips"][0]["address"] == "10.9.0.100/24"


# -- the plugin's side, over a real unix socket --------------------------------------


@pytest.fixture
def daemon_socket(world: World, tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "dhcp.sock")
    server = _Server(path, _Handler)
    server.leases = world.leases
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield path
    server.shutdown()
    server.server_close()
    thread.join()


def cmd_args(world: World, command: str, socket: str, version: str = "0.4.0") -> skel.CmdArgs:
    config = {"cniVersion": version, "name": "net1", "ipam": {"type": "dhcp", "daemonSocketPath": socket}}
    return skel.CmdArgs(
        command=command,
        container_id="ctr1",
        netns=str(world.netns),
        ifname="eth0",
        stdin_data=json.dumps(config).encode(),
        config=config,
    )


def test_the_plugin_adds_checks_and_deletes_through_the_daemon(world: World, daemon_socket: str) -> None:
    result = plugin.cmd_add(cmd_args(world, "ADD", daemon_socket))
    assert result.to_wire() == {
        "cniVersion": "0.4.0",
        "ips": [{"version": "4", "address": "10.9.0.100/24", "gateway": str(SERVER_IP)}],
        "routes": [{"dst": "0.0.0.0/0", "gw": str(SERVER_IP)}],
    }
    plugin.cmd_check(cmd_args(world, "CHECK", daemon_socket))
    plugin.cmd_status(cmd_args(world, "STATUS", daemon_socket))
    plugin.cmd_del(cmd_args(world, "DEL", daemon_socket))
    assert world.server.kinds()[-1] is MessageType.RELEASE
    with pytest.raises(UnknownContainer):
        plugin.cmd_check(cmd_args(world, "CHECK", daemon_socket))


def test_without_a_daemon_the_plugin_says_where_it_looked(world: World, tmp_path: Path) -> None:
    with pytest.raises(PluginNotAvailable, match=f"failed to reach the DHCP daemon at '{tmp_path}/none.sock'"):
        plugin.cmd_status(cmd_args(world, "STATUS", str(tmp_path / "none.sock")))


# -- the command line ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"), [("10s", 10), ("1m30s", 90), ("500ms", 0.5), ("1.5h", 5400), ("7", 7), ("2.5", 2.5)]
)
def test_durations_read_as_go_writes_them(text: str, seconds: float) -> None:
    assert plugin.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10x", "s", "1m-2s"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(Exception, match="invalid duration"):
        plugin.parse_duration(text)


def test_the_command_line_wants_daemon_and_an_absolute_pidfile(capsys) -> None:
    assert plugin.command_line(["serve"]) == 2
    assert "did you mean 'dhcp daemon'" in capsys.readouterr().err
    assert plugin.command_line(["daemon", "-pidfile", "relative.pid"]) == 1
    assert "path not absolute" in capsys.readouterr().err


ACTIVATED_CHILD = """
import os, socket, sys
from pycni.ipam.dhcp.daemon import inherited_listener
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(sys.argv[1])
os.dup2(listener.fileno(), 3)
got = inherited_listener({"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "1"}, os.getpid())
print(got.fileno(), got.getsockname())
"""


def test_socket_activation_takes_fd_3_only_when_meant_for_us(tmp_path: Path) -> None:
    import subprocess
    import sys

    from pycni.ipam.dhcp.daemon import inherited_listener
    from tests.support.cnilab import REPO_ROOT

    assert inherited_listener({}, 42) is None
    assert inherited_listener({"LISTEN_PID": "41", "LISTEN_FDS": "1"}, 42) is None  # another process's
    assert inherited_listener({"LISTEN_PID": "42", "LISTEN_FDS": "0"}, 42) is None
    with pytest.raises(OSError, match="too many \\(2\\) sockets"):
        inherited_listener({"LISTEN_PID": "42", "LISTEN_FDS": "2"}, 42)
    path = str(tmp_path / "activated.sock")
    out = subprocess.run(
        [sys.executable, "-c", ACTIVATED_CHILD, path],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={"PYTHONPATH": str(REPO_ROOT)},
    )
    assert out.stdout.split() == ["3", path]


def test_gc_releases_the_networks_leases_outside_the_valid_attachments(world: World) -> None:
    for container in ("keep", "drop"):
        world.leases.allocate(world.call("allocate", container=container))
    other = world.call("allocate", container="drop")
    other["config"] = {**other["config"], "name": "net2"}
    world.leases.allocate(other)  # another network: GC of net1 leaves it alone
    released = world.leases.gc(world.call("gc", valid=[["keep", "eth0"]]))
    assert [(lease.container_id, lease.network) for lease in released] == [("drop", "net1")]
    assert sorted((lease.container_id, lease.network) for lease in world.stored()) == [
        ("drop", "net2"),
        ("keep", "net1"),
    ]
    assert world.server.kinds().count(MessageType.RELEASE) == 1
    assert answer(world.leases, world.call("gc"))["error"]["code"] == 7  # no valid list


def test_the_plugins_gc_sends_the_valid_attachments(world: World, daemon_socket: str) -> None:
    plugin.cmd_add(cmd_args(world, "ADD", daemon_socket))
    args = cmd_args(world, "GC", daemon_socket, version="1.1.0")
    args.config["cni.dev/valid-attachments"] = [{"containerID": "ctr1", "ifname": "eth0"}]
    plugin.cmd_gc(args)
    assert len(world.stored()) == 1
    args.config["cni.dev/valid-attachments"] = []
    plugin.cmd_gc(args)
    assert world.stored() == [] and world.server.kinds()[-1] is MessageType.RELEASE


def test_a_daemon_refuses_a_live_socket_and_replaces_a_stale_one(tmp_path: Path) -> None:
    import socket

    from pycni.ipam.dhcp.daemon import _claim_socket

    path = tmp_path / "run" / "dhcp.sock"
    _claim_socket(str(path))  # makes the directory
    assert path.parent.is_dir() and not path.exists()
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(str(path))
    live.listen()
    with pytest.raises(OSError, match="another DHCP daemon is listening"):
        _claim_socket(str(path))
    live.close()  # the file stays, nobody listens: stale
    assert path.exists()
    _claim_socket(str(path))
    assert not path.exists()
