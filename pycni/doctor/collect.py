"""Collect a node's ``Snapshot`` once: files, processes, the datastore, the kernel.

``collect(options)`` never raises for what it cannot read: each part that
fails is ``None`` in the snapshot and its error is in ``snapshot.errors``
under the part's name, so the checks that need it say ``skip`` and why.
The datastore is asked once with short timeouts (an unreachable etcd costs
about ``etcd_timeout`` seconds, not the agent's retry budget); plugins that
are this pycni's shims answer VERSION from the registry without a process.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from ipaddress import IPv4Interface, IPv4Network, IPv6Interface, IPv6Network
from typing import Any, TypeVar

from pycni.doctor.snapshot import (
    AgentView,
    CacheFile,
    ConfFile,
    ExecutorView,
    IpamView,
    LeaseView,
    NetnsView,
    Options,
    PluginFile,
    Reservation,
    Snapshot,
    StoreView,
)

__all__ = ["collect", "foreign_arch"]

T = TypeVar("T")


def collect(options: Options, *, etcd_timeout: float = 2.0, tls: tuple[str | None, str | None, str | None] = (
        None, None, None)) -> Snapshot:
    errors: dict[str, str] = {}

    def part(name: str, fn: Callable[[], T]) -> T | None:
        try:
            return fn()
        except Exception as exc:  # one part's failure must not hide the others
            errors[name] = str(exc) or type(exc).__name__
            return None

    # The datastore is the one slow part (a network round trip, or a timeout): asked beside everything else.
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pycni-doctor-etcd")
    asked = pool.submit(collect_store, options, etcd_timeout, tls)
    pool.shutdown(wait=False)
    conf = part("conf", lambda: collect_conf(options.conf_dir))
    winner = next((c for c in conf or () if c.error is None), None)
    plugins = part("plugins", lambda: collect_plugins(winner.types if winner else (), options.bin_dirs)) or {}
    from pycni.doctor.collect_bgp import collect_bird
    from pycni.doctor.collect_kernel import collect_firewall, collect_node
    from pycni.doctor.collect_wireguard import collect_wireguard

    ipam_dir = (winner.ipam_data_dir if winner and winner.ipam_data_dir else options.ipam_data_dir)
    network = winner.network if winner and winner.network else options.network_name
    cache = part("cache", lambda: collect_cache(options.cache_dir, (network, options.network_name)))
    node = part("node", collect_node)
    firewall = part("firewall", collect_firewall)
    store = asked.result()
    return Snapshot(
        options=options,
        conf=conf,
        plugins=plugins,
        agent=part("agent", lambda: collect_agent(options.run_dir)),
        subnet_env=part("subnet_env", lambda: read_env(os.path.join(options.run_dir, "subnet.env"))),
        store=store,
        node=node,
        firewall=firewall,
        ipam=part("ipam", lambda: collect_ipam(os.path.join(ipam_dir, network))),
        cache=cache,
        netns=part("netns", lambda: collect_netns(cache or ())),
        executor=part("executor", lambda: collect_executor(options)),
        policy=part("policy", lambda: collect_policy(winner.raw if winner else {})),
        wireguard=part("wireguard", lambda: collect_wireguard(options.run_dir)) if store.backend_type == "wireguard"
        else None,
        bird=part("bird", lambda: collect_bird(options.run_dir)) if store.backend_type == "bgp" else None,
        errors=errors,
    )


# -- files -----------------------------------------------------------------------------


def _conf_file(path: str) -> ConfFile:
    from pycni.runtime.confdir import load_file
    from pycni.spec.errors import CniError

    name = os.path.basename(path)
    try:
        netlist = load_file(path)
    except CniError as exc:
        return ConfFile(name=name, error=str(exc.msg))
    types: list[str] = []
    ranges: list[IPv4Network | IPv6Network] = []
    ranges6: list[tuple[IPv6Network, IPv6Interface]] = []  # used only when no range is IPv4 (IPv6-only)
    gateway: IPv4Interface | IPv6Interface | None = None
    mtu = bridge = data_dir = None
    for plugin in netlist.plugins:
        types.append(plugin.type)
        ipam = plugin.raw.get("ipam")
        if isinstance(ipam, dict) and isinstance(ipam.get("type"), str):
            types.append(ipam["type"])
            data_dir = ipam.get("dataDir") if isinstance(ipam.get("dataDir"), str) else data_dir
            for range_set in ipam.get("ranges") or []:
                for rng in range_set if isinstance(range_set, list) else []:
                    try:
                        subnet = IPv4Network(str(rng.get("subnet")), strict=False)
                    except ValueError:
                        ranges6 += _ipv6_range(rng)
                        continue
                    ranges.append(subnet)
                    if gateway is None:
                        gw = rng.get("gateway") or str(subnet[1])
                        gateway = IPv4Interface(f"{gw}/{subnet.prefixlen}")
        if plugin.type == "bridge":
            mtu = plugin.raw.get("mtu") if isinstance(plugin.raw.get("mtu"), int) else None
            bridge = str(plugin.raw.get("bridge") or "cni0")
    if not ranges and ranges6:
        ranges, gateway = [subnet for subnet, _ in ranges6], ranges6[0][1]
    try:
        raw = json.loads(netlist.raw_bytes) if netlist.raw_bytes else {}
    except ValueError:
        raw = {}
    raw = raw if isinstance(raw, dict) else {}
    version = raw.get("cniVersion") if "plugins" in raw or "type" in raw else netlist.cni_version
    return ConfFile(name=name, network=netlist.name, cni_version=str(version) if version else None,
                    types=tuple(dict.fromkeys(types)), ranges=tuple(ranges), gateway=gateway, mtu=mtu,
                    bridge=bridge, ipam_data_dir=data_dir, raw=raw)


def collect_conf(directory: str) -> tuple[ConfFile, ...]:
    from pycni.runtime.confdir import conf_files

    if not os.path.isdir(directory):
        return ()
    return tuple(_conf_file(path) for path in conf_files(directory))


# ELF e_machine values of the machines Debian builds for (elf.h), by platform.machine()'s name.
_ELF_MACHINES = {3: "i686", 40: "armv7l", 62: "x86_64", 183: "aarch64", 243: "riscv64", 21: "ppc64le", 22: "s390x"}


def foreign_arch(head: bytes, machine: str) -> str | None:
    """The architecture an ELF header is for, when it is not ``machine``; None for this machine or not ELF."""
    if len(head) < 20 or not head.startswith(b"\x7fELF"):
        return None
    number = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
    arch = _ELF_MACHINES.get(number, f"e_machine {number}")
    runs_here = arch == machine or (machine == "x86_64" and arch == "i686")  # 32-bit x86 runs on x86_64
    return None if runs_here or machine not in _ELF_MACHINES.values() else arch


def _interpreter(path: str) -> str | None:
    with open(path, "rb") as f:
        head = f.read(256)
    if not head.startswith(b"#!"):
        return None
    words = head[2:].split(b"\n", 1)[0].split()
    return os.fsdecode(words[0]) if words else None


def _plugin(plugin_type: str, bin_dirs: tuple[str, ...]) -> PluginFile:
    from pycni import registry
    from pycni.shimfile import shim_plugin_type

    path = next((os.path.join(d, plugin_type) for d in bin_dirs if d and os.path.lexists(os.path.join(d, plugin_type))),
                None)
    if path is None:
        return PluginFile(plugin_type, None)
    if not os.path.isfile(path):
        return PluginFile(plugin_type, path, regular=False)
    if not os.access(path, os.X_OK):
        return PluginFile(plugin_type, path, executable=False)
    with open(path, "rb") as f:
        other = foreign_arch(f.read(20), platform.machine())
    if other is not None:
        return PluginFile(plugin_type, path, foreign_arch=other)
    interpreter = _interpreter(path)
    if interpreter is not None and not os.access(interpreter, os.X_OK):
        return PluginFile(plugin_type, path, interpreter=interpreter, interpreter_ok=False)
    ours = shim_plugin_type(path)
    if ours is not None:
        try:
            return PluginFile(plugin_type, path, interpreter=interpreter,
                              versions=registry.registration(ours).versions)
        except Exception:  # not in this pycni's registry: ask the binary below
            pass
    return _ask_versions(PluginFile(plugin_type, path, interpreter=interpreter), bin_dirs)


def _ask_versions(plugin: PluginFile, bin_dirs: tuple[str, ...]) -> PluginFile:
    from dataclasses import replace

    from pycni.runtime.libcni import CniConfig
    from pycni.spec.errors import CniError

    try:
        info = CniConfig(list(bin_dirs), timeout=5.0).get_version_info(plugin.type)
    except CniError as exc:
        return replace(plugin, version_error=exc.msg)
    return replace(plugin, versions=tuple(info.supported_versions))


def collect_plugins(types: tuple[str, ...], bin_dirs: tuple[str, ...]) -> dict[str, PluginFile]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(len(types), 1)) as pool:
        found = list(pool.map(lambda t: _plugin(t, bin_dirs), types))
    return {p.type: p for p in found}


def read_env(path: str) -> dict[str, str] | None:
    try:
        with open(path, encoding="utf-8") as f:
            return dict(line.strip().split("=", 1) for line in f if "=" in line)
    except FileNotFoundError:
        return None


def collect_agent(run_dir: str) -> AgentView:
    from pycni.cluster.status_file import STATUS_FILE, parse_status
    from pycni.doctor.collect_kernel import cmdline, pid_alive

    now = time.time()
    try:
        with open(os.path.join(run_dir, STATUS_FILE), encoding="utf-8") as f:
            status = parse_status(f.read())
    except FileNotFoundError:
        return AgentView(None, f"{STATUS_FILE} missing", False, False, now)
    except (OSError, ValueError) as exc:
        return AgentView(None, f"{STATUS_FILE}: {exc}", False, False, now)
    alive = pid_alive(status.pid)
    line = cmdline(status.pid)
    return AgentView(status, None, alive, alive and b"pycni" in line and b"agent" in line, now)


def collect_ipam(directory: str) -> IpamView:
    from pycni.ipam.host_local.store import LAST_RESERVED_PREFIX, LOCK_FILE

    if not os.path.isdir(directory):
        return IpamView(directory, ())
    reservations = []
    for name in sorted(os.listdir(directory)):
        if name == LOCK_FILE or name.startswith((LAST_RESERVED_PREFIX, ".")):
            continue
        try:
            with open(os.path.join(directory, name), encoding="utf-8", errors="replace", newline="") as f:
                cid, _, ifname = f.read().partition("\r\n")
        except OSError:
            continue
        reservations.append(Reservation(name, cid.strip(), ifname.strip()))
    return IpamView(directory, tuple(reservations))


def _split_cache_name(name: str, networks: tuple[str, ...]) -> tuple[str | None, str | None, str | None]:
    """``<network>-<containerID>-<ifname>`` (libcni's file name) for a known network; Nones otherwise."""
    for network in networks:
        if name.startswith(network + "-") and "-" in name[len(network) + 1:]:
            cid, _, ifname = name[len(network) + 1:].rpartition("-")
            return network, cid, ifname
    return None, None, None


def collect_cache(cache_dir: str, networks: tuple[str, ...] = ()) -> tuple[CacheFile, ...]:
    """The result cache's files; for one that cannot be read, its name says whose it is."""
    results = os.path.join(cache_dir, "results")
    if not os.path.isdir(results):
        return ()
    files = []
    for name in sorted(os.listdir(results)):
        if name.startswith("."):
            continue
        try:
            with open(os.path.join(results, name), "rb") as f:
                data: Any = json.loads(f.read())
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            network, cid, ifname = _split_cache_name(name, networks)
            files.append(CacheFile(name, network, cid, ifname, None, f"unreadable: {exc}"))
            continue
        files.append(CacheFile(name, data.get("networkName"), data.get("containerId"), data.get("ifName"),
                               data.get("netns"), None))
    return tuple(files)


def collect_netns(cache: tuple[CacheFile, ...]) -> tuple[NetnsView, ...]:
    from pycni.doctor.collect_kernel import netns_inodes_in_use

    base = "/run/netns"
    if not os.path.isdir(base):
        return ()
    named = {os.path.basename(c.netns) for c in cache if c.netns}
    in_use = netns_inodes_in_use()
    nsfs = os.stat("/proc/self/ns/net").st_dev
    views = []
    for name in sorted(os.listdir(base)):
        try:
            info = os.stat(os.path.join(base, name))
        except OSError:
            continue
        if info.st_dev != nsfs:
            continue  # not a namespace here: a mount private to another process's mount namespace (ip netns exec)
        views.append(NetnsView(name, info.st_ino in in_use or name in named))
    return tuple(views)


# -- services ----------------------------------------------------------------------------


def _connects(path: str, timeout: float = 1.0) -> str | None:
    """None when a unix stream socket at ``path`` accepts a connection, else why not."""
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError as exc:
        return f"connect {path}: {exc.strerror or exc}"
    finally:
        sock.close()
    return None


def _ask_status(path: str, timeout: float = 2.0) -> str | None:
    """None when the policy agent answers the netpol plugin's ``status`` request with ok, else why not."""
    answer = _ask_agent(path, "status", timeout)
    return answer if isinstance(answer, str) else None


def _ask_agent(path: str, op: str, timeout: float = 2.0) -> dict[str, Any] | str:
    """The policy agent's answer to ``op`` when ok, else why not (a string)."""
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
        sock.sendall(json.dumps({"op": op}).encode())
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    except OSError as exc:
        return f"{exc.strerror or exc}"
    finally:
        sock.close()
    try:
        answer = json.loads(data)
    except ValueError:
        return f"answer is not JSON: {data[:100]!r}"
    if not isinstance(answer, dict) or answer.get("ok") is not True:
        return f"{op} refused: {answer.get('error') if isinstance(answer, dict) else answer}"
    return answer


def _stale_shims(bin_dirs: tuple[str, ...]) -> list[str]:
    """pycni shims in the bin dirs that another pycni installed (their import roots are not ours)."""
    from pycni.shimfile import is_pycni_shim, shim_plugin_type

    stale = []
    for directory in bin_dirs:
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            path = os.path.join(directory, name)
            if os.path.isfile(path) and is_pycni_shim(path) and shim_plugin_type(path) is None:
                stale.append(f"{path}: installed by another pycni (its import path is not this one's)")
    return stale


def collect_executor(options: Options) -> ExecutorView:
    stale = tuple(_stale_shims(options.bin_dirs))
    socket_path = os.environ.get("PYCNI_EXECUTOR_SOCKET") or options.executor_socket
    if not os.path.exists(socket_path):
        return ExecutorView(socket_path, False, False, stale_shims=stale)
    error = _connects(socket_path)
    return ExecutorView(socket_path, True, error is None, error, stale)


def collect_policy(conflist: Any) -> tuple[bool, str] | None:
    """(enforced, detail) when the config chains netpol: its agent socket answers and the table exists."""
    plugins = conflist.get("plugins") if isinstance(conflist, dict) else None
    netpol = next((p for p in plugins or [] if isinstance(p, dict) and p.get("type") == "netpol"), None)
    if netpol is None:
        return None
    socket_path = str(netpol.get("agentSocket") or "")
    error = _ask_status(socket_path) if socket_path else "the netpol plugin names no agentSocket"
    if error is not None:
        return False, f"policy agent at {socket_path}: {error}"
    from pycni.net.firewall import nft

    if not nft.table_exists("inet", "pycni_policy"):
        return False, "the policy agent answers but table inet pycni_policy is missing"
    from pycni.policy.table_audit import differences, kernel_summary

    for attempt in range(3):  # a sync between the two reads is no fault: look again
        committed = _ask_agent(socket_path, "ruleset")
        if isinstance(committed, str):  # an agent from before the ruleset request: presence is all it can say
            return True, f"the policy agent answers status on {socket_path}; table inet pycni_policy in place"
        found = differences(committed.get("summary") or {},
                            kernel_summary(nft.list_json("table inet pycni_policy")))
        if not found:
            break
        time.sleep(0.3 * (attempt + 1))
    if found:
        shown = "; ".join(found[:5]) + (f"; and {len(found) - 5} more" if len(found) > 5 else "")
        return False, f"table inet pycni_policy is not what the agent committed: {shown}"
    return True, (f"the policy agent answers on {socket_path}; table inet pycni_policy holds exactly what it "
                  "committed")


# -- the datastore -----------------------------------------------------------------------


def _ipv6_range(rng: Any) -> list[tuple[IPv6Network, IPv6Interface]]:
    """A host-local IPv6 range and its gateway (``::1`` of the subnet by default); [] when it is not one."""
    try:
        subnet = IPv6Network(str(rng.get("subnet")), strict=False)
        return [(subnet, IPv6Interface(f"{rng.get('gateway') or subnet[1]}/{subnet.prefixlen}"))]
    except ValueError:
        return []


def collect_store(options: Options, timeout: float, tls: tuple[str | None, str | None, str | None]) -> StoreView:
    from pycni.cluster.etcd import EtcdKV
    from pycni.cluster.subnets import SubnetManager

    try:
        kv = EtcdKV(list(options.etcd_endpoints), ca_file=tls[0], cert_file=tls[1], key_file=tls[2],
                    timeout=timeout, retry_for=0.0)
    except Exception as exc:
        return StoreView(error=str(exc))
    try:
        manager = SubnetManager(kv, options.etcd_prefix)
        from pycni.cluster.lease import ClusterNotInitialized

        try:
            config = manager.load_config()
        except ClusterNotInitialized:
            return StoreView(error=None)
        leases, _ = manager.list_leases()
    except Exception as exc:
        return StoreView(error=str(exc) or type(exc).__name__)
    finally:
        kv.close()
    views = []
    for lease in leases:
        data = lease.backend_data
        v6_data = lease.v6.backend_data if lease.v6 is not None and lease.subnet.version == 6 else {}
        mac = v6_data.get("vtepMAC") or data.get("vtepMAC") or data.get("VtepMAC")  # IPv6-only: the v6 device's
        mtu = data.get("podMTU")
        key = data.get("PublicKey")
        views.append(LeaseView(lease.node, lease.subnet, lease.public_ip, lease.backend_type,
                               str(mac) if mac else None, mtu if isinstance(mtu, int) else None,
                               key if isinstance(key, str) else None))
    backend = config.backend
    return StoreView(error=None, network=config.lease_network, backend_type=backend.type,
                     vxlan_port=backend.port if backend.type == "vxlan" else None,
                     vni=backend.vni if backend.type == "vxlan" else None, leases=tuple(views),
                     bgp=backend.bgp if backend.type == "bgp" else None)
