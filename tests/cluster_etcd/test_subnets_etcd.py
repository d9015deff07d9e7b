"""SubnetManager and EtcdKV against a real etcd: races, expiry, restarts, failover."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from pycni.cluster.config import ClusterConfig
from pycni.cluster.etcd import EtcdKV
from pycni.cluster.etcd_gateway import EtcdGatewayKV
from pycni.cluster.etcd_grpc import EtcdGrpcKV
from pycni.cluster.kv import KVUnavailable, WatchEvent
from pycni.cluster.lease import Lease, NetworkFull
from pycni.cluster.subnets import SubnetManager
from pycni.cluster.watch import LeaseEvent
from pycni.cluster.watch_loop import watch_leases
from tests.cluster_etcd.etcd_server import EtcdServer, free_port

REPO = Path(__file__).resolve().parents[2]
SMALL = ClusterConfig(network=IPv4Network("10.0.0.0/24"), subnet_len=28)  # 15 subnets of 16 addresses


def ip(n: int) -> IPv4Address:
    return IPv4Address(f"192.0.2.{n % 250 + 1}")


def test_threads_racing_on_an_almost_full_network_never_share_a_subnet(
    etcd_server: EtcdServer, prefix: str, open_kv: Callable[..., EtcdKV]
) -> None:
    admin = SubnetManager(open_kv(etcd_server.endpoint), prefix)
    admin.init_config(SMALL)
    for i in range(10):
        admin.acquire(f"old{i}", ip(i), {})
    barrier = threading.Barrier(12)
    got: dict[str, Lease] = {}
    failed: dict[str, BaseException] = {}

    def racer(node: str) -> None:
        kv = EtcdKV(etcd_server.endpoint)
        try:
            sm = SubnetManager(kv, prefix)
            barrier.wait(10)
            got[node] = sm.acquire(node, ip(len(node)), {})
        except BaseException as exc:
            failed[node] = exc
        finally:
            kv.close()

    threads = [threading.Thread(target=racer, args=(f"new{i}",)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(got) == 5 and len({lease.subnet for lease in got.values()}) == 5
    assert sorted(type(e).__name__ for e in failed.values()) == ["NetworkFull"] * 7
    assert {str(e) for e in failed.values()} == {"no free subnet left in 10.0.0.0/24 (15 of 15 leased or quarantined)"}
    leases, _ = admin.list_leases()
    assert len(leases) == 15 and len({lease.subnet for lease in leases}) == 15
    admin.kv.close()


RACER = """
import json, sys
from ipaddress import IPv4Address
from pycni.cluster.etcd import EtcdKV
from pycni.cluster.lease import NetworkFull
from pycni.cluster.subnets import SubnetManager
endpoint, prefix, name = sys.argv[1:4]
sm = SubnetManager(EtcdKV(endpoint), prefix)
sys.stdin.readline()  # start together
i = 0
while True:
    try:
        lease = sm.acquire(f"{name}-{i}", IPv4Address("192.0.2.1"), {})
    except NetworkFull as exc:
        print(json.dumps({"full": str(exc)}), flush=True)
        break
    print(json.dumps({"node": lease.node, "subnet": str(lease.subnet)}), flush=True)
    i += 1
"""


def test_two_processes_filling_the_network_never_share_a_subnet(
    etcd_server: EtcdServer, prefix: str, open_kv: Callable[..., EtcdKV]
) -> None:
    SubnetManager(open_kv(etcd_server.endpoint), prefix).init_config(SMALL)
    procs = [
        subprocess.Popen([sys.executable, "-c", RACER, etcd_server.endpoint, prefix, name], cwd=REPO,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in ("p", "q")
    ]
    time.sleep(1.0)  # both imported and connected
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append([json.loads(line) for line in out.splitlines()])
    leased = [r["subnet"] for lines in results for r in lines if "subnet" in r]
    assert len(leased) == 15 and len(set(leased)) == 15
    for lines in results:
        assert lines[-1] == {"full": "no free subnet left in 10.0.0.0/24 (15 of 15 leased or quarantined)"}


def test_expiry_and_return_with_real_ttls(etcd_server: EtcdServer, prefix: str) -> None:
    kv = EtcdKV(etcd_server.endpoint)
    sm = SubnetManager(kv, prefix, ttl=2)
    sm.init_config(ClusterConfig(network=IPv4Network("10.7.0.0/16"), quarantine=600))
    a = sm.acquire("a", ip(1), {})
    deadline = time.monotonic() + 4.5
    while time.monotonic() < deadline:  # renewed past its TTL twice over
        a = sm.renew(a)
        time.sleep(0.5)
    assert [lease.node for lease in sm.list_leases()[0]] == ["a"]
    deadline = time.monotonic() + 10
    while sm.list_leases()[0]:
        assert time.monotonic() < deadline, "lease did not expire"
        time.sleep(0.2)
    b = sm.acquire("b", ip(2), {})
    assert b.subnet != a.subnet, "a's subnet is quarantined"
    back = sm.renew(a)
    assert back.subnet == a.subnet and back.lease_id != a.lease_id
    kv.close()


def collect_lease_events(sm: SubnetManager, known: list[Lease], stop: threading.Event, out: list[LeaseEvent],
                         cond: threading.Condition) -> threading.Thread:
    def run() -> None:
        for event in watch_leases(sm, stop, known=known):
            with cond:
                out.append(event)
                cond.notify_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


CLIENTS = pytest.mark.parametrize("kind", [EtcdGatewayKV, EtcdGrpcKV])


@CLIENTS
def test_lease_watch_resumes_after_etcd_restarts(own_etcd: EtcdServer, prefix: str,
                                                 kind: type[EtcdGatewayKV | EtcdGrpcKV]) -> None:
    kv, writer_kv = kind(own_etcd.endpoint, retry_for=30), kind(own_etcd.endpoint, retry_for=30)
    sm, writer = SubnetManager(kv, prefix), SubnetManager(writer_kv, prefix)
    writer.init_config(ClusterConfig(network=IPv4Network("10.8.0.0/16")))
    leases, _ = sm.list_leases()
    stop, cond = threading.Event(), threading.Condition()
    events: list[LeaseEvent] = []
    thread = collect_lease_events(sm, leases, stop, events, cond)
    writer.acquire("a", ip(1), {})
    with cond:
        assert cond.wait_for(lambda: len(events) == 1, 10)
    own_etcd.stop()
    time.sleep(1.0)  # the watch is failing and retrying now
    own_etcd.start()
    writer.acquire("b", ip(2), {})  # most likely before the watch is back: it must resume from its revision
    writer.release("a")
    writer.acquire("c", ip(3), {})
    with cond:
        assert cond.wait_for(lambda: len(events) == 4, 30), events
    stop.set()
    thread.join(10)
    assert [(e.type, e.lease.node) for e in events] == [("added", "a"), ("added", "b"), ("removed", "a"),
                                                        ("added", "c")]
    kv.close()
    writer_kv.close()


@CLIENTS
def test_kv_watch_delivers_every_event_once_across_a_restart(own_etcd: EtcdServer, prefix: str,
                                                             kind: type[EtcdGatewayKV | EtcdGrpcKV]) -> None:
    kv, writer = kind(own_etcd.endpoint, retry_for=30), kind(own_etcd.endpoint, retry_for=30)
    _, revision = kv.list_prefix(prefix)
    stop, cond = threading.Event(), threading.Condition()
    got: list[WatchEvent] = []

    def run() -> None:
        for event in kv.watch_prefix(prefix + "/", revision + 1, stop):
            with cond:
                got.append(event)
                cond.notify_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    for i in range(3):
        assert writer.create(f"{prefix}/k{i}", b"before")
    with cond:
        assert cond.wait_for(lambda: len(got) == 3, 10)
    own_etcd.restart()
    for i in range(3, 6):
        assert writer.create(f"{prefix}/k{i}", b"after")
    with cond:
        assert cond.wait_for(lambda: len(got) == 6, 30)
    time.sleep(0.5)
    stop.set()
    thread.join(10)
    assert [e.kv.key for e in got] == [f"{prefix}/k{i}" for i in range(6)]
    kv.close()
    writer.close()


@CLIENTS
def test_an_unreachable_etcd_is_kv_unavailable_after_the_retry_window(kind: type[EtcdGatewayKV | EtcdGrpcKV]) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    kv = kind(dead, retry_for=1.0)
    started = time.monotonic()
    with pytest.raises(KVUnavailable, match=rf"etcd is unreachable at {dead} .*connection refused"):
        kv.get("/x")
    assert 1.0 <= time.monotonic() - started < 5
    with pytest.raises(KVUnavailable):
        for _ in kv.watch_prefix("/x", 1, threading.Event()):
            pass


@CLIENTS
def test_fails_over_to_the_next_endpoint(etcd_server: EtcdServer, prefix: str,
                                         kind: type[EtcdGatewayKV | EtcdGrpcKV]) -> None:
    kv = kind([f"http://127.0.0.1:{free_port()}", etcd_server.endpoint], retry_for=5)
    assert kv.create(f"{prefix}/f", b"1")
    created = kv.get(f"{prefix}/f")
    assert created is not None
    stop = threading.Event()
    kv2 = kind(f"http://127.0.0.1:{free_port()},{etcd_server.endpoint}", retry_for=5)
    first = next(iter(kv2.watch_prefix(prefix + "/", created.mod_revision, stop)))
    stop.set()
    assert first.kv.key == f"{prefix}/f"
    kv.close()
    kv2.close()


def test_network_full_with_real_etcd_names_the_counts(etcd_server: EtcdServer, prefix: str) -> None:
    sm = SubnetManager(EtcdKV(etcd_server.endpoint), prefix)
    sm.init_config(ClusterConfig(network=IPv4Network("10.9.0.0/28"), subnet_len=29))
    sm.acquire("a", ip(1), {})
    sm.acquire("b", ip(2), {})
    with pytest.raises(NetworkFull, match=r"^no free subnet left in 10.9.0.0/28 \(2 of 2 leased or quarantined\)$"):
        sm.acquire("c", ip(3), {})
    sm.kv.close()
