"""What ``pycni doctor`` knows about a node: plain values collected once, judged by pure checks.

Every part of a ``Snapshot`` that could not be collected is ``None`` (or
carries an ``error``), so a check tells "nothing to see" from "could not
look" and says ``skip`` with the reason. ``collect.py`` fills it on a real
node; unit tests build it by hand, including faults this machine cannot
make. No I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network
from typing import Any

from pycni.cluster.backends.bgp_config import BgpSettings
from pycni.cluster.status_file import AgentStatus
from pycni.doctor.bgp_view import BirdView
from pycni.doctor.wireguard_view import WgDeviceView

__all__ = [
    "AgentView",
    "CacheFile",
    "ConfFile",
    "ExecutorView",
    "FirewallView",
    "IpamView",
    "LeaseView",
    "LinkView",
    "NetnsView",
    "NodeView",
    "Options",
    "PeerEntries",
    "PluginFile",
    "ProbeResult",
    "Reservation",
    "RouteView",
    "Snapshot",
    "StoreView",
    "SyntheticResult",
]


@dataclass(frozen=True)
class Options:
    """Where things are on the node: the agent's flags, plus the runtime's bin and cache dirs."""

    node_name: str
    conf_dir: str = "/etc/cni/net.d"
    run_dir: str = "/run/pycni"
    bin_dirs: tuple[str, ...] = ("/opt/cni/bin",)
    cache_dir: str = "/var/lib/cni"
    ipam_data_dir: str = "/var/lib/cni/networks"
    network_name: str = "pycni"
    bridge: str = "cni0"
    iface: str | None = None
    etcd_endpoints: tuple[str, ...] = ("http://127.0.0.1:2379",)
    etcd_prefix: str = "/pycni"
    executor_socket: str = "/run/pycni/executor.sock"
    expected_conflist: str = "00-pycni-cluster.conflist"


@dataclass(frozen=True)
class ConfFile:
    """One file of the conf dir, in the order runtimes read them."""

    name: str
    network: str | None = None  # None when it did not parse
    error: str | None = None
    cni_version: str | None = None
    types: tuple[str, ...] = ()  # every plugin ``type`` and ``ipam.type``, in chain order
    # host-local subnets of its IPAM: the IPv4 ones, or the IPv6 ones of a config without any (IPv6-only)
    ranges: tuple[IPv4Network | IPv6Network, ...] = ()
    gateway: IPv4Interface | IPv6Interface | None = None  # bridge gateway (first range's gateway with its prefix)
    mtu: int | None = None  # the bridge plugin's mtu
    bridge: str | None = None
    ipam_data_dir: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class PluginFile:
    """A plugin type looked up on the bin dirs."""

    type: str
    path: str | None  # None: not found in any bin dir
    regular: bool = True
    executable: bool = True
    interpreter: str | None = None  # the shebang's program, for scripts
    interpreter_ok: bool = True
    foreign_arch: str | None = None  # an ELF binary built for another machine ("aarch64" on x86_64)
    versions: tuple[str, ...] | None = None  # VERSION's supportedVersions; None: not asked or failed
    version_error: str | None = None


@dataclass(frozen=True)
class AgentView:
    status: AgentStatus | None
    status_error: str | None  # why the status file could not be read ("missing" when absent)
    pid_alive: bool
    pid_is_agent: bool  # the live pid's command line is a pycni agent's (not a reused pid)
    now: float  # wall clock when collected, to age last_reconcile


@dataclass(frozen=True)
class LeaseView:
    node: str
    subnet: IPv4Network | IPv6Network  # IPv6 in an IPv6-only cluster
    public_ip: IPv4Address | IPv6Address
    backend_type: str
    vtep_mac: str | None
    pod_mtu: int | None  # published by agents since pycni doctor; None for older leases
    public_key: str | None = None  # the wireguard backend's (BackendData.PublicKey)


@dataclass(frozen=True)
class StoreView:
    """The datastore as seen from this node: the cluster config and every lease, or why not."""

    error: str | None  # set when etcd could not be reached or refused us
    network: IPv4Network | IPv6Network | None = None  # the network leases cut: IPv6 in an IPv6-only cluster
    backend_type: str | None = None
    vxlan_port: int | None = None
    vni: int | None = None
    leases: tuple[LeaseView, ...] = ()
    bgp: BgpSettings | None = None  # the bgp backend's settings (mesh, reflectors, global peers)


@dataclass(frozen=True)
class LinkView:
    name: str
    kind: str
    mtu: int
    mac: str
    up: bool
    addresses: tuple[IPv4Interface, ...] = ()
    addresses6: tuple[IPv6Interface, ...] = ()  # global IPv6 addresses (an IPv6-only node's underlay)
    master: str | None = None
    managed_by: str | None = None  # NetworkManager/networkd when known to manage it
    tx_checksum: bool | None = None  # tx-checksum-ip-generic, when known

    @property
    def all_addresses(self) -> tuple[IPv4Interface | IPv6Interface, ...]:
        return (*self.addresses, *self.addresses6)


@dataclass(frozen=True)
class RouteView:
    dst: IPv4Network | IPv6Network
    gw: IPv4Address | IPv6Address | None
    dev: str
    protocol: int


@dataclass(frozen=True)
class PeerEntries:
    """The VXLAN device's FDB entries (MAC, dst) and permanent neighbours (IP, MAC)."""

    fdb: frozenset[tuple[str, IPv4Address | IPv6Address]] = frozenset()  # IPv6 on an IPv6-only node's device
    neighbours: frozenset[tuple[IPv4Address | IPv6Address, str]] = frozenset()


@dataclass(frozen=True)
class NodeView:
    """The node's network namespace: links, routes, the overlay's entries, sysctls, conntrack."""

    links: tuple[LinkView, ...]
    routes: tuple[RouteView, ...]
    peer_entries: PeerEntries | None  # None: no VXLAN device
    sysctls: Mapping[str, str | None]  # key -> value, None when the file does not exist
    conntrack: tuple[int, int] | None = None  # (count, max)
    kernel_log: tuple[str, ...] = ()  # matching kernel messages (bad checksum, conntrack full), when readable

    def link(self, name: str) -> LinkView | None:
        return next((link for link in self.links if link.name == name), None)


@dataclass(frozen=True)
class FirewallView:
    """Base chains and rules that can drop pod traffic, as text, from nftables and iptables-legacy."""

    # (family, table, chain, hook, policy, rules as nft text)
    nft_chains: tuple[tuple[str, str, str, str, str, tuple[str, ...]], ...]
    legacy_tables: tuple[str, ...]  # /proc/net/ip_tables_names
    legacy_rules: tuple[str, ...]  # iptables-legacy-save lines (-P/-A), when the tool exists
    error: str | None = None


@dataclass(frozen=True)
class Reservation:
    ip: str
    container_id: str
    ifname: str


@dataclass(frozen=True)
class IpamView:
    directory: str
    reservations: tuple[Reservation, ...]
    error: str | None = None


@dataclass(frozen=True)
class CacheFile:
    name: str
    network: str | None
    container_id: str | None
    ifname: str | None
    netns: str | None
    error: str | None  # empty or not JSON: DEL will fail on it


@dataclass(frozen=True)
class NetnsView:
    name: str
    in_use: bool  # some process lives in it, or a cached attachment names it


@dataclass(frozen=True)
class ExecutorView:
    socket: str
    exists: bool
    answers: bool
    error: str | None = None
    stale_shims: tuple[str, ...] = ()  # installed shims whose recorded import root is not this pycni's


@dataclass(frozen=True)
class SyntheticResult:
    ok: bool
    step: str  # "add", "check", "del", "setup"
    error: str | None
    seconds: float


@dataclass(frozen=True)
class ProbeResult:
    peer: str
    target: IPv4Address | IPv6Address
    reachable: bool
    df_size: int | None  # payload of the don't-fragment ping; None when not tried
    df_ok: bool | None
    df_error: str | None = None  # what ping said when the big ping failed ("local error: message too long, ...")
    gateway: IPv4Address | IPv6Address | None = None  # vxlan: the peer's pod gateway, pinged besides its VTEP
    gateway_ok: bool | None = None


@dataclass(frozen=True)
class Snapshot:
    options: Options
    conf: tuple[ConfFile, ...] | None  # None: conf dir unreadable
    plugins: Mapping[str, PluginFile]
    agent: AgentView | None
    subnet_env: Mapping[str, str] | None
    store: StoreView | None
    node: NodeView | None
    firewall: FirewallView | None
    ipam: IpamView | None
    cache: tuple[CacheFile, ...] | None
    netns: tuple[NetnsView, ...] | None
    executor: ExecutorView | None
    policy: tuple[bool, str] | None = None  # (table matches the agent's compiled state, detail); None: not exposed
    synthetic: SyntheticResult | None = None
    probes: tuple[ProbeResult, ...] | None = None
    wireguard: WgDeviceView | None = None  # the node's WireGuard device (wireguard backend only)
    bird: BirdView | None = None  # the node's bird (bgp backend only)
    errors: Mapping[str, str] = field(default_factory=dict)  # part -> why it could not be collected

    @property
    def winner(self) -> ConfFile | None:
        """The config runtimes use: the first file that parses (``None`` when none does)."""
        return next((c for c in self.conf or () if c.error is None), None)

    @property
    def own_lease(self) -> LeaseView | None:
        if self.store is None:
            return None
        return next((lease for lease in self.store.leases if lease.node == self.options.node_name), None)

    @property
    def vxlan_device(self) -> str | None:
        """The agent's VXLAN device (``pycni.<VNI>``; ``pycni6.<VNI>`` if IPv6-only) when the cluster runs vxlan."""
        if self.store is None or self.store.backend_type != "vxlan":
            return None
        family = "6" if self.store.network is not None and self.store.network.version == 6 else ""
        return f"pycni{family}.{self.store.vni if self.store.vni is not None else 1}"

    @property
    def underlay(self) -> str | None:
        """The device peers reach this node by: ``--iface``, else the one holding the leased address, else the
        default route's."""
        if self.options.iface:
            return self.options.iface
        if self.node is None:
            return None
        lease = self.own_lease
        if lease is not None:
            for link in self.node.links:
                if any(a.ip == lease.public_ip for a in link.all_addresses):
                    return link.name
        return next((r.dev for r in self.node.routes if r.dst.prefixlen == 0), None)
