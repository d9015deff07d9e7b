"""How fast a new node's lease reaches every other node, for 10, 50, 200 and 1,000 simulated nodes.

Each full simulated node is what the agent runs for leases, minus the kernel:
its own etcd client (``EtcdKV``), a ``SubnetManager`` holding its lease
(renewed every TTL/3) and a watcher thread (``list_leases`` then
``watch_leases``, i.e. the pure ``LeaseWatcher`` over an etcd watch).
Per round a newcomer (a process of its own, as a new node is) acquires a
subnet; convergence is the time from the start of its ``acquire`` until the
last node's watcher has reported it ``added``. Then the newcomer is removed (``release``, what ``pycni node
remove`` does) and the time until every watcher reported it ``removed`` is
measured the same way. ``after write`` is the same from the end of the newcomer's
``acquire`` (its claim is written): the fan-out alone.

All full nodes are threads of this one process, so the figures include
Python's thread scheduling (one interpreter lock for N watchers); on a real
cluster each node has its own process and CPU, so these are upper bounds.
Beyond ``--full`` nodes (default 200) the others are light: a lease and an
etcd watch each, so etcd holds and fans out to every node, read by one
selector thread (``LightWatchers``) instead of a Python watcher each, and
stamped by the kernel when the bytes arrive (``SO_TIMESTAMPNS``: a remote
node would read them then, not when this process's 200 full watchers let
the selector thread run); the newcomer's ``acquire`` reads every node's
lease either way. ``full nodes p50`` is the last full node alone. ``etcd
CPU`` is what etcd spent (user + system) per newcomer, from its acquire
until every node saw it, when the benchmark runs its own etcd.

``--client gateway,grpc`` runs each size with each etcd client in turn
(alternating, same etcd, same run). ``gateway``: ``EtcdGatewayKV`` (etcd's JSON
gateway) for every full node, the newcomer and the admin, light watchers as
raw HTTP watch streams read as above. ``grpc``: ``EtcdGrpcKV`` for all of
those, and the light watchers are gRPC watch streams, one per light node, on
4 shared HTTP/2 channels, read by one asyncio loop in a process of their own
(``GrpcLightWatchers``): gRPC's bytes cannot be stamped by the kernel, so the
stamp is the loop's clock when the decoded event reaches Python, which counts
that process's own work behind it (decoding up to 800 events in turn) against
gRPC: a remote node would only read its one event.

Run from the repository: ``.venv/bin/python benchmarks/cluster_convergence.py``
(starts its own etcd from Debian's etcd-server on loopback, removes it at the
end; ``--etcd URL`` uses a running one; ``--nodes 10,50`` for a quick run).
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import selectors
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pycni.cluster.config import ClusterConfig
from pycni.cluster.etcd_gateway import EtcdGatewayKV
from pycni.cluster.etcd_grpc import EtcdGrpcKV
from pycni.cluster.kv import KVUnavailable, prefix_end
from pycni.cluster.lease import Lease
from pycni.cluster.subnets import SubnetManager
from pycni.cluster.watch_loop import watch_leases
from tests.cluster_etcd.etcd_server import EtcdServer

TTL = 30
SO_TIMESTAMPNS = 35  # Linux's SO_TIMESTAMPNS and SCM_TIMESTAMPNS (the socket module names neither)
CLIENTS: dict[str, type[EtcdGatewayKV] | type[EtcdGrpcKV]] = {"gateway": EtcdGatewayKV, "grpc": EtcdGrpcKV}


@dataclass
class SimNode:
    name: str
    endpoint: str
    prefix: str
    client: str
    seen: dict[tuple[str, str], float] = field(default_factory=dict)  # (type, node) -> perf_counter
    cond: threading.Condition = field(default_factory=threading.Condition)

    def start(self, stop: threading.Event, index: int) -> None:
        self.kv = CLIENTS[self.client](self.endpoint)
        self.sm = SubnetManager(self.kv, self.prefix, ttl=TTL)
        self.lease: Lease = self.sm.acquire(self.name, IPv4Address(f"10.99.{index // 250}.{index % 250 + 1}"),
                                            {"VtepMAC": f"02:00:00:00:{index // 256:02x}:{index % 256:02x}"})
        threading.Thread(target=self._keep, args=(stop,), daemon=True, name=f"keep-{self.name}").start()
        threading.Thread(target=self._watch, args=(stop,), daemon=True, name=f"watch-{self.name}").start()

    def _keep(self, stop: threading.Event) -> None:
        while not stop.wait(TTL / 3):
            try:
                self.lease = self.sm.renew(self.lease)
            except KVUnavailable:
                if not stop.is_set():  # else: the run ended while renewing, and closed the client
                    raise

    def _watch(self, stop: threading.Event) -> None:
        leases, _ = self.sm.list_leases()
        for event in watch_leases(self.sm, stop, known=leases):
            now = time.perf_counter()
            with self.cond:
                self.seen[(event.type, event.lease.node)] = now
                self.cond.notify_all()

    def wait_for(self, key: tuple[str, str], timeout: float) -> float:
        with self.cond:
            if not self.cond.wait_for(lambda: key in self.seen, timeout):
                raise TimeoutError(f"{self.name} never saw {key}")
            return self.seen[key]


class LightWatchers:
    """Nodes that only watch: one etcd watch stream each, all read by one selector thread.

    Each holds a lease (long TTL: no keeper) and its own watch on the subnets prefix, so etcd
    holds and fans out to as many leases and watchers as the cluster has nodes; their events are
    read by one thread instead of a full watcher each, which on a real cluster runs on its node's
    own CPU. Each read is stamped with the kernel's receive time (``SO_TIMESTAMPNS``), so the stamp
    does not wait for this thread's turn at the interpreter lock; events are recognised after the
    fact (``arrival``), off the clock.
    """

    def __init__(self, endpoint: str, prefix: str, names: list[str], start_revision: int) -> None:
        self.names = names
        self.lines: dict[int, list[tuple[float, bytes]]] = {}  # socket fd -> (arrival, event line)
        self._tails: dict[int, bytes] = {}
        self.selector = selectors.DefaultSelector()
        host, port = endpoint.removeprefix("http://").rsplit(":", 1)
        key = f"{prefix}/subnets/".encode()
        body = json.dumps({"create_request": {"key": base64.b64encode(key).decode(),
                                              "range_end": base64.b64encode(prefix_end(key)).decode(),
                                              "start_revision": str(start_revision)}}).encode()
        request = (f"POST /v3/watch HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        self.sockets = []
        for _ in names:
            sock = socket.create_connection((host, int(port)), timeout=30)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.sendall(request)
            answer = b""
            while b'"created":true' not in answer:  # the watch is in place
                chunk = sock.recv(65536)
                if not chunk:
                    raise RuntimeError(f"etcd closed a watch: {answer[:200]!r}")
                answer += chunk
            sock.setblocking(False)
            self.sockets.append(sock)
            self.lines[sock.fileno()] = []
            self.selector.register(sock, selectors.EVENT_READ)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            for key, _ in self.selector.select(0.2):
                fd = key.fd
                chunk, ancillary, _, _ = key.fileobj.recvmsg(1 << 20, socket.CMSG_SPACE(16))  # type: ignore[union-attr]
                now = _kernel_stamp(ancillary)
                data = self._tails.get(fd, b"") + chunk
                *complete, self._tails[fd] = data.split(b"\n")
                self.lines[fd] += [(now, line) for line in complete if b'"events"' in line]

    def arrival(self, kind: str, node: str, timeout: float) -> list[float]:
        """When each light watcher got the event that ``node``'s lease was added / removed."""
        deadline = time.monotonic() + timeout
        found: dict[int, float] = {}
        while len(found) < len(self.sockets):
            for fd, lines in list(self.lines.items()):
                if fd in found:
                    continue
                for at, line in list(lines):
                    if _event_of(line, kind) == node:
                        found[fd] = at
                        break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.sockets) - len(found)} light watchers never saw {kind} {node}")
            time.sleep(0.01)
        return list(found.values())

    def close(self) -> None:
        for sock in self.sockets:
            self.selector.unregister(sock)
            sock.close()


class GrpcLightWatchers:
    """``LightWatchers`` over gRPC: one watch stream per light node on 4 shared channels, in a child process.

    The child runs one asyncio loop over every stream and stamps each event with its clock when the
    decoded response reaches Python (perf_counter is CLOCK_MONOTONIC, one clock for every process).
    """

    def __init__(self, endpoint: str, prefix: str, names: list[str], start_revision: int) -> None:
        self.names = names
        context = multiprocessing.get_context("spawn")
        self._conn, their_end = context.Pipe()
        self._process = context.Process(target=_grpc_light_child,
                                        args=(endpoint, f"{prefix}/subnets/", len(names), start_revision, their_end))
        self._process.start()
        if self._conn.recv() != "ready":
            raise RuntimeError("the gRPC light watchers did not start")

    def run(self, stop: threading.Event) -> None:  # the child reads; nothing to do here
        stop.wait()

    def arrival(self, kind: str, node: str, timeout: float) -> list[float]:
        self._conn.send((kind, node, timeout))
        answer: list[float] | str = self._conn.recv()
        if isinstance(answer, str):
            raise TimeoutError(answer)
        return answer

    def close(self) -> None:
        self._conn.send(None)
        self._process.join(30)


def _grpc_light_child(endpoint: str, key_prefix: str, count: int, start_revision: int, conn: Connection) -> None:
    import grpc  # type: ignore[import-untyped]
    from pyetcd.etcdrpc import rpc_pb2 as pb  # type: ignore[import-untyped]
    from pyetcd.etcdrpc import rpc_pb2_grpc as pb_grpc

    seen: dict[tuple[str, str], list[float]] = {}
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    async def watch(stub: pb_grpc.WatchStub, created: list[int]) -> None:
        key = key_prefix.encode()
        create = pb.WatchCreateRequest(key=key, range_end=prefix_end(key), start_revision=start_revision)
        call = stub.Watch()
        await call.write(pb.WatchRequest(create_request=create))
        async for response in call:
            now = time.perf_counter()
            if response.created:
                created.append(1)
                if len(created) == count:
                    ready.set()
                continue
            for event in response.events:
                if event.type == 1:
                    found = ("removed", f"subnet:{event.kv.key.decode()}")
                else:
                    found = ("added", str(json.loads(event.kv.value).get("Node")))
                seen.setdefault(found, []).append(now)

    async def main() -> None:
        target = endpoint.removeprefix("http://")
        channels = [grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
                    for _ in range(4)]
        stubs = [pb_grpc.WatchStub(channel) for channel in channels]
        created: list[int] = []
        tasks = [asyncio.ensure_future(watch(stubs[i % 4], created)) for i in range(count)]
        await asyncio.gather(*tasks, return_exceptions=True)

    threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True).start()
    if not ready.wait(300):
        conn.send("not ready")
        return
    conn.send("ready")
    while (order := conn.recv()) is not None:
        kind, node, timeout = order
        deadline = time.monotonic() + timeout
        while len(seen.get((kind, node), ())) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        stamps = list(seen.get((kind, node), ()))
        conn.send(stamps if len(stamps) >= count else f"{count - len(stamps)} light watchers never saw {kind} {node}")


def _kernel_stamp(ancillary: list[tuple[int, int, bytes]]) -> float:
    """The receive time the kernel put on a read (CLOCK_REALTIME) as a perf_counter value."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            seconds, nanoseconds = struct.unpack("qq", data[:16])
            return float(seconds + nanoseconds / 1e9) - (time.time() - time.perf_counter())
    return time.perf_counter()  # no stamp: now


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU of process ``pid`` so far (0 when unknown)."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _event_of(line: bytes, kind: str) -> str | None:
    """The node whose lease a watch response's event put (``added``) or deleted (``removed``)."""
    events = (json.loads(line).get("result") or {}).get("events") or []
    for event in events:
        if kind == "removed" and event.get("type") == "DELETE":
            return f"subnet:{base64.b64decode(event['kv']['key']).decode()}"
        if kind == "added" and event.get("type", "PUT") == "PUT":
            return str(json.loads(base64.b64decode(event["kv"]["value"])).get("Node"))
    return None


def newcomer(endpoint: str, prefix: str, conn: Connection, client: str) -> None:
    """The newcomer node, in a process of its own (as on a real cluster): acquire or release when told.

    Answers each order with (perf_counter at the start, seconds it took, the lease key); perf_counter
    is CLOCK_MONOTONIC, the same clock in every process.
    """
    kv = CLIENTS[client](endpoint)
    manager = SubnetManager(kv, prefix, ttl=TTL)
    while (order := conn.recv()) is not None:
        what, name, r = order
        started = time.perf_counter()
        if what == "acquire":
            key = manager.acquire(name, IPv4Address(f"10.97.0.{r + 1}"), {"VtepMAC": "02:00:00:00:ff:ff"}).key
        else:
            manager.release(name)
            key = None
        conn.send((started, time.perf_counter() - started, key))
    kv.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(endpoint: str, n: int, rounds: int, full: int, etcd_pid: int | None = None,
        client: str = "gateway") -> dict[str, list[float]]:
    """Convergence with ``n`` nodes, ``full`` of them full watchers (the rest light: ``LightWatchers``)."""
    prefix = f"/bench-{uuid.uuid4().hex[:8]}"
    admin_kv = CLIENTS[client](endpoint)
    admin = SubnetManager(admin_kv, prefix, ttl=TTL)
    # a /24 per node, with room for the probe and the newcomers: a /16 holds 256 nodes, a /12 4,096
    admin.init_config(ClusterConfig(network=IPv4Network("10.244.0.0/16" if n < 250 else "10.240.0.0/12")))
    stop = threading.Event()
    full = min(full, n)
    nodes = [SimNode(f"node{i:04d}", endpoint, prefix, client) for i in range(full)]
    for i, node in enumerate(nodes):
        node.start(stop, i)
    light_names = [f"light{i:04d}" for i in range(n - full)]
    light_leases = SubnetManager(admin_kv, prefix, ttl=3600)  # outlives the run: no keeper needed
    light_ids = [light_leases.acquire(name, IPv4Address(f"10.99.{i // 250}.{i % 250 + 1}"),
                                      {"VtepMAC": "02:00:00:00:00:01"}).lease_id
                 for i, name in enumerate(light_names, start=full)]
    watchers = LightWatchers if client == "gateway" else GrpcLightWatchers
    light = watchers(endpoint, prefix, light_names, admin.list_leases()[1] + 1) if light_names else None
    if light is not None:
        threading.Thread(target=light.run, args=(stop,), daemon=True, name="light-watchers").start()
    # warm up: every watcher is following (its watch stream is open) once it reports a probe
    probe_kv = CLIENTS[client](endpoint)
    probe = SubnetManager(probe_kv, prefix, ttl=TTL)
    probe_lease = probe.acquire("probe", IPv4Address("10.98.0.1"), {})
    for node in nodes:
        node.wait_for(("added", "probe"), 120)
    if light is not None:
        light.arrival("added", "probe", 120)
    probe.release("probe")
    for node in nodes:
        node.wait_for(("removed", "probe"), 120)
    if light is not None:
        light.arrival("removed", f"subnet:{probe_lease.key}", 120)

    results: dict[str, list[float]] = {"acquire": [], "added": [], "added_full": [], "added_median": [],
                                       "after_write": [], "removed": [], "etcd_cpu": []}
    orders, their_end = multiprocessing.get_context("spawn").Pipe()
    process = multiprocessing.get_context("spawn").Process(target=newcomer, args=(endpoint, prefix, their_end, client))
    process.start()

    def tell(what: str, name: str, r: int) -> tuple[float, float, str | None]:
        orders.send((what, name, r))
        answer: tuple[float, float, str | None] = orders.recv()
        return answer

    for r in range(rounds):
        name = f"new{r}"
        cpu = _cpu_seconds(etcd_pid)
        started, took, key = tell("acquire", name, r)
        results["acquire"].append(took)
        arrivals = [node.wait_for(("added", name), 60) - started for node in nodes]
        results["added_full"].append(max(arrivals, default=0.0))
        arrivals += [at - started for at in (light.arrival("added", name, 60) if light is not None else [])]
        results["added"].append(max(arrivals))
        results["after_write"].append(max(arrivals) - took)
        results["etcd_cpu"].append(_cpu_seconds(etcd_pid) - cpu)
        results["added_median"].append(statistics.median(arrivals))
        started, _, _ = tell("release", name, r)
        gone = [node.wait_for(("removed", name), 60) - started for node in nodes]
        if light is not None:
            gone += [at - started for at in light.arrival("removed", f"subnet:{key}", 60)]
        results["removed"].append(max(gone))
        time.sleep(1.5)  # the watchers' expiry bookkeeping (0.1-1 s after a removal) is done before the next
    stop.set()
    for node in nodes:
        node.kv.close()
    if light is not None:
        light.close()
    for lease_id in light_ids:  # their keys go with their etcd leases (a release would list the store each time)
        admin_kv.revoke(lease_id)
    orders.send(None)
    process.join(30)
    for kv in (admin_kv, probe_kv):
        kv.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--nodes", default="10,50,200,1000", help="simulated node counts, comma-separated")
    parser.add_argument("--rounds", type=int, default=20, help="newcomers per node count (default 20)")
    parser.add_argument("--full", type=int, default=200,
                        help="at most this many full nodes (threads of this process); the rest are light watchers "
                             "(default 200)")
    parser.add_argument("--etcd", help="use this etcd client URL instead of starting one")
    parser.add_argument("--client", default="grpc",
                        help="etcd client(s), comma-separated, each size run with each in turn: gateway (etcd's "
                             "JSON gateway, EtcdGatewayKV), grpc (EtcdGrpcKV, the agent's EtcdKV) (default grpc)")
    args = parser.parse_args()
    counts = [int(x) for x in args.nodes.split(",")]
    clients = [c.strip() for c in args.client.split(",")]
    if unknown := [c for c in clients if c not in CLIENTS]:
        parser.error(f"--client: unknown {', '.join(unknown)} (gateway, grpc)")

    def ms(values: list[float], q: float | None = None) -> str:
        value = statistics.median(values) if q is None else percentile(values, q)
        return f"{value * 1000:.1f}"

    print(f"lease convergence over {args.rounds} newcomers per size (ms; 'all' = until the last node saw it; "
          "p99 of 20 or fewer is the largest)")
    header = ("client", "nodes", "full", "acquire p50", "added p50 node", "added all p50", "added all p99",
              "after write p50", "full nodes p50", "removed all p50", "removed all p99", "etcd CPU p50")
    widths = [max(len(h), 7) for h in header]
    print("  ".join(cell.rjust(widths[i]) for i, cell in enumerate(header)), flush=True)
    table: dict[tuple[str, int], dict[str, list[float]]] = {}
    server = None
    with tempfile.TemporaryDirectory(prefix="pycni-bench-etcd-") as tmp:
        if args.etcd:
            endpoint = args.etcd
        else:
            server = EtcdServer(Path(tmp) / "data", progress_notify="10m").start()
            endpoint = server.endpoint
        try:
            pid = server.process.pid if server is not None and server.process is not None else None
            for n, client in ((n, c) for n in counts for c in clients):  # a row as each is done
                r = table[client, n] = run(endpoint, n, args.rounds, args.full, pid, client)
                row = (client, str(n), str(min(n, args.full)), ms(r["acquire"]), ms(r["added_median"]), ms(r["added"]),
                       ms(r["added"], 0.99), ms(r["after_write"]), ms(r["added_full"]), ms(r["removed"]),
                       ms(r["removed"], 0.99), ms(r["etcd_cpu"]) if server is not None else "-")
                print("  ".join(cell.rjust(widths[i]) for i, cell in enumerate(row)), flush=True)
        finally:
            if server is not None:
                server.stop()
    for client in clients if len(counts) >= 2 else ():
        small, large = counts[0], counts[-1]
        grow = statistics.median(table[client, large]["added"]) / statistics.median(table[client, small]["added"])
        print(f"{client}: {large} vs {small} nodes: {large / small:.0f}x the nodes, {grow:.2f}x the time until all "
              "saw a newcomer")
    if len(clients) >= 2:
        for n in counts:
            ratios = [statistics.median(table[c, n]["added"]) / statistics.median(table[clients[0], n]["added"])
                      for c in clients[1:]]
            print(f"{n} nodes, added all p50 against {clients[0]}: " + ", ".join(
                f"{c} {ratio:.2f}x" for c, ratio in zip(clients[1:], ratios, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
