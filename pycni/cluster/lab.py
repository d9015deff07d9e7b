"""``pycni lab``: a multi-node cluster on one Linux machine, for demos, learning and tests.

Everything is built the way an administrator would by hand (``ip netns``,
``ip link``, ``etcd``, ``ip netns exec <node> pycni agent``), deliberately
outside pycni's own kernel layer: the lab is the machine room the agent
runs in, not part of it. See ``lab_state`` for the layout. Nothing is made
in the host's own network namespace; everything a lab makes is named after
its id and recorded in its state file before it is made, and ``down``
removes all of it (namespaces found by name prefix too, after a crash).

``Lab`` is the Python API the tests use; ``pycni lab`` (pycni.cli.lab) is
a thin layer over it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Network, ip_network
from typing import Any, TypeVar

from pycni.cluster import lab_bgp, lab_dualstack
from pycni.cluster.lab_state import (
    DEFAULT_NETWORK,
    DEFAULT_ROOT,
    OUTSIDE_GW,
    OUTSIDE_IP,
    OUTSIDE_NET,
    UNDERLAY,
    LabState,
    NodeState,
    PodState,
    check_name,
    node_ip,
)
from pycni.cluster.lab_wireguard import stop_wireguard
from pycni.net.netns import stop_netns_processes

__all__ = ["Lab", "LabError", "find_lab"]

T = TypeVar("T")

NETWORK_NAME = "pycni"
PREFIX = "/pycni"
LEASE_TTL = 10
RESYNC = 2.0
PLUGINS = ("bridge", "host-local", "portmap", "loopback", "netpol")
MAX_TXN_OPS = 10000  # etcd's default of 128 operations per transaction is too few for a big ``pycni apply``
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# Processes this Python process started (agents, etcd), kept so they are reaped here rather than
# reported as "still running" when their Popen object would be collected.
_children: dict[int, subprocess.Popen[bytes]] = {}


class LabError(Exception):
    """A lab operation failed; the message says what and how to recover."""


def _run(*cmd: str, check: bool = True, timeout: float = 30, env: dict[str, str] | None = None,
         ) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    if check and proc.returncode != 0:
        raise LabError(f"'{' '.join(cmd)}' failed: {(proc.stderr or proc.stdout).strip()}")
    return proc


def _ns_exec(netns: str, *cmd: str, check: bool = True, timeout: float = 30,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return _run("ip", "netns", "exec", netns, *cmd, check=check, timeout=timeout, env=env)


def _ip(netns: str, *args: str) -> None:
    _run("ip", "-n", netns, *args)


def _python_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_REPO_ROOT, env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def find_lab(root: str = DEFAULT_ROOT, lab_id: str | None = None) -> Lab:
    """The lab ``lab_id``, or the only lab under ``root``."""
    ids = LabState.list_ids(root)
    if lab_id is None:
        if not ids:
            raise LabError("no lab is up (start one with 'pycni lab up')")
        if len(ids) > 1:
            raise LabError(f"several labs are up ({', '.join(ids)}): choose one with --lab")
        lab_id = ids[0]
    elif lab_id not in ids:
        raise LabError(f"no lab '{lab_id}' under {root}")
    return Lab(LabState.load(root, lab_id))


class Lab:
    def __init__(self, state: LabState) -> None:
        self.state = state

    # -- up / down ----------------------------------------------------------------

    @classmethod
    def up(cls, nodes: int = 3, backend: str = "vxlan", *, root: str = DEFAULT_ROOT, lab_id: str | None = None,
           network: IPv4Network = DEFAULT_NETWORK, wait: float = 60.0, route_reflectors: Sequence[str] = (),
           ipv6: bool = False, ipv6_only: bool = False) -> Lab:
        """Build a lab of ``nodes`` nodes; on any failure everything made so far is removed.

        With ``bgp``, the underlay router runs a top-of-rack bird (lab_bgp) and the nodes a mesh, or peer
        with ``route_reflectors`` (node names) when given."""
        if backend not in ("vxlan", "host-gw", "bgp", "wireguard"):
            raise LabError(f"backend {backend!r}: use vxlan, host-gw, bgp or wireguard")
        tools = ("ip", "etcd", *{"bgp": ("bird",), "wireguard": ("wireguard-go", "wg")}.get(backend, ()))
        missing = [tool for tool in tools if shutil.which(tool) is None]
        if missing:
            raise LabError(f"the lab needs {' and '.join(missing)} "
                           "(Debian: iproute2, etcd-server, bird2, wireguard-go, wireguard-tools)")
        lab_id = lab_id or "pl" + os.urandom(3).hex()
        if os.path.exists(os.path.join(root, lab_id)):
            raise LabError(f"lab '{lab_id}' already exists under {root}")
        lab = cls(LabState(id=lab_id, root=root, backend=backend, network=str(network), ipv6=ipv6 or ipv6_only,
                           ipv6_only=ipv6_only))
        lab.state.save()
        try:
            lab._install_plugins()
            lab._make_underlay()
            lab.start_etcd()
            lab._store_config(network, backend, route_reflectors)
            if backend == "bgp":
                lab_bgp.start_tor(lab.state, network)
            for _ in range(nodes):
                lab.add_node(wait=0)
            lab.wait_ready(wait)
        except BaseException:
            lab.down()
            raise
        return lab

    def down(self) -> list[str]:
        """Stop every process and remove every namespace and file of the lab; returns what was removed."""
        removed: list[str] = []
        for node in self.state.nodes.values():
            if node.agent_pid and self._kill(node.agent_pid):
                removed.append(f"agent of {node.name} (pid {node.agent_pid})")
        removed += lab_bgp.stop_birds(self.state)
        removed += stop_wireguard(self.state)
        if self.state.etcd_pid and self._kill(self.state.etcd_pid):
            removed.append(f"etcd (pid {self.state.etcd_pid})")
        names = set(self.state.namespaces)
        with contextlib.suppress(FileNotFoundError):
            names |= {n for n in os.listdir("/run/netns") if n.startswith(self.state.id + "-")}
        for name in sorted(names, key=lambda n: (not n.startswith(f"{self.state.id}-p-"), n)):
            removed += [f"pid {pid} in {name}" for pid in stop_netns_processes(f"/run/netns/{name}")]  # `lab exec &`
            if _run("ip", "netns", "delete", name, check=False).returncode == 0:
                removed.append(f"netns {name}")
        shutil.rmtree(self.state.dir, ignore_errors=True)
        return removed

    # -- processes ------------------------------------------------------------------

    def _spawn(self, netns: str, cmd: Sequence[str], log_path: str, env: dict[str, str] | None = None) -> int:
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(["ip", "netns", "exec", netns, *cmd], stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True, env=env)
        _children[proc.pid] = proc
        return proc.pid

    def _ours(self, pid: int) -> bool:
        """True if ``pid`` is a live process started by this lab (its command line names the lab)."""
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            return False
        return self.state.id.encode() in cmdline or self.state.dir.encode() in cmdline

    def _kill(self, pid: int, timeout: float = 5.0) -> bool:
        if not self._ours(pid):
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._alive(pid):
            time.sleep(0.05)
        if self._alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        self._alive(pid)
        return True

    @staticmethod
    def _alive(pid: int) -> bool:
        child = _children.get(pid)
        if child is not None:
            if child.poll() is None:
                return True
            del _children[pid]
            return False
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return False

    # -- the underlay, etcd, the cluster config ---------------------------------------

    def _add_netns(self, name: str) -> None:
        self.state.namespaces.append(name)
        self.state.save()
        _run("ip", "netns", "add", name)
        _ip(name, "link", "set", "lo", "up")

    def _install_plugins(self) -> None:
        from pycni.executor.install import install_plugins

        install_plugins(os.path.join(self.state.dir, "bin"), PLUGINS,
                        executor_socket=os.environ.get("PYCNI_EXECUTOR_SOCKET"))

    def _make_underlay(self) -> None:
        ul, ext = self.state.underlay_ns, self.state.outside_ns
        self._add_netns(ul)
        _ip(ul, "link", "add", "ul0", "type", "bridge")
        _ip(ul, "addr", "add", f"{self.state.etcd_ip}/{UNDERLAY.prefixlen}", "dev", "ul0")
        _ip(ul, "link", "set", "ul0", "up")
        lab_dualstack.underlay_up(self.state)
        _ns_exec(ul, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        # The outside world: behind the underlay's router, knowing no route to any pod.
        self._add_netns(ext)
        _ip(ul, "link", "add", "ext0", "type", "veth", "peer", "name", "eth0", "netns", ext)
        _ip(ul, "addr", "add", f"{OUTSIDE_GW}/{OUTSIDE_NET.prefixlen}", "dev", "ext0")
        _ip(ul, "link", "set", "ext0", "up")
        _ip(ext, "addr", "add", f"{OUTSIDE_IP}/{OUTSIDE_NET.prefixlen}", "dev", "eth0")
        _ip(ext, "link", "set", "eth0", "up")
        _ip(ext, "route", "add", "default", "via", str(OUTSIDE_GW))
        lab_dualstack.outside_up(self.state)

    def start_etcd(self, wait: float = 20.0) -> None:
        url, data_dir = self.state.etcd_endpoint, os.path.join(self.state.dir, "etcd")
        cmd = [
            "etcd", "--name", self.state.id, "--data-dir", data_dir,
            "--listen-client-urls", url, "--advertise-client-urls", url,
            "--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
            "--initial-cluster", f"{self.state.id}=http://127.0.0.1:2380", "--max-txn-ops", str(MAX_TXN_OPS),
        ]
        self.state.etcd_pid = self._spawn(self.state.underlay_ns, cmd, os.path.join(self.state.dir, "etcd.log"),
                                          env=dict(os.environ, ETCD_UNSUPPORTED_ARCH=os.uname().machine))
        self.state.save()
        deadline = time.monotonic() + wait
        while not self._etcd_answers():
            if time.monotonic() > deadline or not self._alive(self.state.etcd_pid):
                raise LabError(f"etcd did not start; see {os.path.join(self.state.dir, 'etcd.log')}")
            time.sleep(0.2)

    def stop_etcd(self) -> None:
        if self.state.etcd_pid:
            self._kill(self.state.etcd_pid)
        self.state.etcd_pid = None
        self.state.save()

    def _etcd_answers(self) -> bool:
        probe = f"import urllib.request; urllib.request.urlopen('{self.state.etcd_endpoint}/health', timeout=1)"
        return _ns_exec(self.state.underlay_ns, sys.executable, "-c", probe, check=False).returncode == 0

    def with_kv(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(kv)`` with an etcd client made inside the underlay namespace (etcd is not reachable elsewhere)."""
        from pycni.cluster.etcd import etcd_client
        from pycni.net.netns import run_in_netns

        def inside() -> T:
            kv = etcd_client([self.state.etcd_endpoint])  # the gateway's: gRPC would connect from outside
            try:
                return fn(kv)
            finally:
                kv.close()

        return run_in_netns(f"/run/netns/{self.state.underlay_ns}", inside)

    def _store_config(self, network: IPv4Network, backend: str, route_reflectors: Sequence[str] = ()) -> None:
        from pycni.cluster.config import BackendConfig, ClusterConfig
        from pycni.cluster.subnets import SubnetManager

        bgp = lab_bgp.lab_settings(self.state.etcd_ip, route_reflectors) if backend == "bgp" else None
        v4 = None if self.state.ipv6_only else network
        config = ClusterConfig(network=v4, subnet_len=24, backend=BackendConfig(type=backend, bgp=bgp),
                               ipv6=lab_dualstack.settings(self.state))
        self.with_kv(lambda kv: SubnetManager(kv, PREFIX).init_config(config))

    # -- nodes -------------------------------------------------------------------------

    def add_node(self, name: str | None = None, *, wait: float = 30.0) -> NodeState:
        index = self.state.next_node_index()
        name = check_name(name or f"n{index}", "node")
        if name in self.state.nodes:
            raise LabError(f"lab {self.state.id} already has a node '{name}'")
        node = NodeState(name=name, index=index, netns=f"{self.state.id}-{name}",
                         ip=str(lab_dualstack.node_ipv6(index) if self.state.ipv6_only else node_ip(index)))
        self.state.nodes[name] = node
        self._add_netns(node.netns)
        ul = self.state.underlay_ns
        port = f"v{name}"[:15]
        _ip(ul, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", node.netns)
        _ip(ul, "link", "set", port, "master", "ul0", "up")
        _ip(node.netns, "link", "set", "eth0", "up")
        lab_dualstack.node_up(self.state, node.netns, index)  # its addresses and default routes
        for sub in ("net.d", "run", "ipam", "cache"):
            os.makedirs(os.path.join(self.state.node_dir(name), sub), exist_ok=True)
        self.start_agent(name)
        if wait:
            self.wait_ready(wait)
        return node

    def agent_command(self, name: str) -> list[str]:
        d = self.state.node_dir(name)
        return [
            sys.executable, "-m", "pycni", "agent", "--node-name", name,
            "--etcd-endpoints", self.state.etcd_endpoint, "--etcd-prefix", PREFIX, "--iface", "eth0",
            "--cni-conf-dir", os.path.join(d, "net.d"), "--run-dir", os.path.join(d, "run"),
            "--ipam-data-dir", os.path.join(d, "ipam"), "--network-name", NETWORK_NAME,
            "--lease-ttl", str(LEASE_TTL), "--resync-interval", str(RESYNC), "--metrics", "127.0.0.1:9100",
        ]

    def start_agent(self, name: str) -> int:
        node = self.state.nodes[name]
        node.agent_pid = self._spawn(node.netns, self.agent_command(name),
                                     os.path.join(self.state.node_dir(name), "agent.log"), env=_python_env())
        self.state.save()
        return node.agent_pid

    def stop_agent(self, name: str) -> None:
        node = self.state.nodes[name]
        if node.agent_pid:
            self._kill(node.agent_pid)
        node.agent_pid = None
        self.state.save()

    def remove_node(self, name: str) -> None:
        """Take a node out: stop its agent, release its lease, delete its pods and namespace."""
        if name not in self.state.nodes:
            raise LabError(f"lab {self.state.id} has no node '{name}'")
        self.stop_agent(name)
        if self.state.backend == "bgp":
            lab_bgp.node_bird(self.state, name).leave()  # withdraw its subnet from every peer, then stop bird
        stop_wireguard(self.state, [name])
        from pycni.cluster.subnets import SubnetManager

        self.with_kv(lambda kv: SubnetManager(kv, PREFIX).release(name))
        for pod in [p for p in self.state.pods.values() if p.node == name]:
            _run("ip", "netns", "delete", pod.netns, check=False)
            del self.state.pods[pod.name]
        node = self.state.nodes.pop(name)
        _run("ip", "netns", "delete", node.netns, check=False)
        _run("ip", "-n", self.state.underlay_ns, "link", "delete", f"v{name}"[:15], check=False)
        shutil.rmtree(self.state.node_dir(name), ignore_errors=True)
        self.state.save()

    def node_subnet(self, name: str) -> IPv4Network | IPv6Network | None:
        """The node's subnet from its subnet.env (None until the agent wrote it)."""
        path = os.path.join(self.state.node_dir(name), "run", "subnet.env")
        try:
            with open(path, encoding="utf-8") as f:
                values = dict(line.strip().split("=", 1) for line in f if "=" in line)
        except FileNotFoundError:
            return None
        text = values.get("PYCNI_SUBNET") or values.get("PYCNI_IPV6_SUBNET")  # IPv6 in an IPv6-only lab
        return ip_network(text, strict=False) if text else None

    def owned_routes(self, name: str) -> set[IPv4Network | IPv6Network]:
        """Destinations of the routes to other nodes' pods (``ip route show proto 124``; ``proto bird`` with bgp)."""
        proto, family = "bird" if self.state.backend == "bgp" else "124", "-6" if self.state.ipv6_only else "-4"
        out = _run("ip", "-n", self.state.nodes[name].netns, "-j", family, "route", "show", "proto", proto).stdout
        return {ip_network(r["dst"]) for r in json.loads(out or "[]") if r.get("type") != "blackhole"}

    def converged(self) -> bool:
        """Every node has its subnet and a route to every other node's subnet, and nothing more."""
        subnets = {name: self.node_subnet(name) for name in self.state.nodes}
        if any(s is None for s in subnets.values()):
            return False
        for name in self.state.nodes:
            wanted = {s for n, s in subnets.items() if n != name and s is not None}
            if self.owned_routes(name) != wanted:
                return False
        if not lab_dualstack.converged(self.state):
            return False
        return self.state.backend != "bgp" or lab_bgp.tor_subnets(self.state) == set(subnets.values())  # the ToR too

    def _log_tail(self, node: str, lines: int = 8) -> str:
        try:
            with open(os.path.join(self.state.node_dir(node), "agent.log"), encoding="utf-8", errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Wait until the lab has converged; returns the seconds it took."""
        start = time.monotonic()
        while not self.converged():
            if time.monotonic() - start > timeout:
                dead = [n.name for n in self.state.nodes.values() if not (n.agent_pid and self._alive(n.agent_pid))]
                hint = f"; agents not running: {', '.join(dead)}" if dead else ""
                hint += "".join(f"\n--- {n}'s agent log (last lines):\n{self._log_tail(n)}" for n in self.state.nodes)
                raise LabError(f"lab {self.state.id} did not converge within {timeout:.0f}s{hint} "
                               f"(logs in {self.state.dir})")
            time.sleep(0.2)
        return time.monotonic() - start

    # -- pods ---------------------------------------------------------------------------

    def _cni_env(self, node: str) -> dict[str, str]:
        d = self.state.node_dir(node)
        return _python_env(NETCONFPATH=os.path.join(d, "net.d"), CNI_PATH=os.path.join(self.state.dir, "bin"),
                           CNI_CACHE_DIR=os.path.join(d, "cache"))

    def _pod_cni_env(self, pod: PodState) -> dict[str, str]:
        """The runtime's environment for a pod; a namespaced pod gets the CNI_ARGS kubelet's runtimes pass."""
        env = self._cni_env(pod.node)
        if pod.namespace is not None:
            # the container ID `pycni add` derives from the netns path, as cnitool does (pycni.cli.cnitool)
            cid = "cnitool-" + hashlib.sha512(f"/run/netns/{pod.netns}".encode()).hexdigest()[:20]
            env["CNI_ARGS"] = (f"IgnoreUnknown=1;K8S_POD_NAMESPACE={pod.namespace};"
                               f"K8S_POD_NAME={pod.name.rsplit('/', 1)[-1]};K8S_POD_INFRA_CONTAINER_ID={cid}")
        return env

    def add_pod(self, node: str, name: str, *, namespace: str | None = None) -> PodState:
        """Attach a pod; with ``namespace`` it is ``namespace/name`` to the lab and to NetworkPolicy."""
        check_name(name, "pod")
        key = name if namespace in (None, "default") else f"{check_name(namespace or '', 'namespace')}/{name}"
        if node not in self.state.nodes:
            raise LabError(f"lab {self.state.id} has no node '{node}'")
        if key in self.state.pods:
            raise LabError(f"lab {self.state.id} already has a pod '{key}'")
        pod = PodState(name=key, node=node, netns=self.state.pod_netns(key), namespace=namespace)
        self.state.pods[key] = pod
        self._add_netns(pod.netns)
        proc = _ns_exec(self.state.nodes[node].netns, sys.executable, "-m", "pycni", "add", NETWORK_NAME,
                        f"/run/netns/{pod.netns}", env=self._pod_cni_env(pod), check=False, timeout=60)
        if proc.returncode != 0:
            self.del_pod(key)
            raise LabError(f"failed to attach pod '{key}' on {node}: {proc.stderr.strip()}")
        result = json.loads(proc.stdout)
        pod.ip, pod.ipv6 = str(result["ips"][0]["address"]).split("/")[0], lab_dualstack.pod_ipv6(result)
        self.state.save()
        return pod

    def del_pod(self, name: str) -> None:
        pod = self.state.pods.get(name)
        if pod is None:
            raise LabError(f"lab {self.state.id} has no pod '{name}'")
        node = self.state.nodes.get(pod.node)
        if node is not None and os.path.exists(f"/run/netns/{pod.netns}"):
            _ns_exec(node.netns, sys.executable, "-m", "pycni", "del", NETWORK_NAME, f"/run/netns/{pod.netns}",
                     env=self._pod_cni_env(pod), check=False, timeout=60)
        _run("ip", "netns", "delete", pod.netns, check=False)
        del self.state.pods[name]
        self.state.save()

    def exec(self, name: str, cmd: Sequence[str], *, check: bool = False,
             timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` in the namespace of a pod, node, ``outside``, ``underlay`` or ``tor``."""
        return _run(*self.exec_argv(name, cmd), check=check, timeout=timeout)

    def exec_argv(self, name: str, cmd: Sequence[str]) -> list[str]:
        """``ip netns exec <ns of name> cmd``; a bare ``birdc`` is aimed at that node's (or the ToR's) bird."""
        try:
            netns = self.state.underlay_ns if name in lab_bgp.TOR_NAMES else self.state.netns_of(name)
        except KeyError as exc:
            raise LabError(str(exc.args[0])) from None
        return ["ip", "netns", "exec", netns, *lab_bgp.birdc_command(self.state, name, cmd)]

    def ping(self, src: str, dst_ip: str, count: int = 1) -> bool:
        return self.exec(src, ["ping", "-c", str(count), "-W", "2", "-q", dst_ip]).returncode == 0

    # -- status -------------------------------------------------------------------------

    def status_rows(self) -> tuple[list[list[str]], list[list[str]]]:
        """(node rows, pod rows) for ``pycni lab status``."""
        nodes: list[list[str]] = []
        for node in sorted(self.state.nodes.values(), key=lambda n: n.index):
            alive = bool(node.agent_pid and self._alive(node.agent_pid))
            subnet = self.node_subnet(node.name)
            names = sorted(p.name for p in self.state.pods.values() if p.node == node.name)
            nodes.append([node.name, node.netns, node.ip, str(subnet or "-"),
                          f"running (pid {node.agent_pid})" if alive else "stopped", ",".join(names) or "-"])
        pods = [[p.name, p.node, p.ip or "-", p.netns] for p in sorted(self.state.pods.values(), key=lambda p: p.name)]
        return nodes, pods

    @property
    def outside_ip(self) -> IPv4Address:
        return OUTSIDE_IP
