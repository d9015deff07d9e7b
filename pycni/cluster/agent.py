"""The node agent: one per node, started by ``pycni agent``.

Wiring only; each job is its own module:

- ``underlay``      which device and address peers reach this node by
- ``backends``      vxlan or host-gw: what the kernel needs per peer
- ``lease_keeper``  the node's subnet lease, renewed well within its TTL
- ``peer_watcher``  every node's lease: snapshot + watch, relisted on any break
- ``reconciler``    conflist, subnet.env, masquerade and the backend's entries,
                    on every change and every ``resync`` seconds
- ``services``      what layers above cluster run beside it (the NetworkPolicy
                    agent, composed by ``pycni agent``): each is made from the
                    datastore once the cluster config is read, started before
                    the first conflist is written (so a pod the conflist
                    attaches finds its socket), and stopped on exit. cluster
                    does not import policy (docs/DESIGN.md layers), hence the hook.

``run_agent(options, stop)`` returns when ``stop`` is set (SIGTERM/SIGINT
in ``pycni agent``). It does not release the lease on exit unless asked:
a restarted agent finds its lease, its subnet and its kernel state as it
left them, and running pods never notice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import TYPE_CHECKING, Protocol

from pycni.cluster.agent_metrics import AgentMetrics
from pycni.cluster.reconciler import NodeFiles
from pycni.cluster.retry import Backoff, retry_until_stopped
from pycni.rundir import DEFAULT_RUN_DIR

if TYPE_CHECKING:
    from pycni.cluster.config import ClusterConfig
    from pycni.cluster.kv import KV
    from pycni.cluster.subnets import SubnetManager

__all__ = ["AgentOptions", "NodeService", "ServiceFactory", "run_agent"]

log = logging.getLogger("pycni.agent")


class NodeService(Protocol):
    """Something that runs beside the node agent: ``start`` may raise (retried), ``stop`` must not."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


# A service gets the node's store and its metrics registry (to serve its own series beside the agent's).
ServiceFactory = Callable[["KV", AgentMetrics], NodeService]


@dataclass(frozen=True)
class AgentOptions:
    node_name: str
    etcd_endpoints: tuple[str, ...] = ("http://127.0.0.1:2379",)
    etcd_prefix: str = "/pycni"
    etcd_ca_file: str | None = None
    etcd_cert_file: str | None = None
    etcd_key_file: str | None = None
    iface: str | None = None
    public_ip: IPv4Address | None = None
    public_ipv6: IPv6Address | None = None  # dual stack: the IPv6 underlay address (default: the iface's first)
    files: NodeFiles = field(default_factory=lambda: NodeFiles(conf_dir="/etc/cni/net.d", run_dir=DEFAULT_RUN_DIR))
    metrics_addr: str | None = None
    lease_ttl: int = 30
    resync: float = 5.0
    masquerade: bool = True
    release_on_exit: bool = False


def _connect(options: AgentOptions) -> KV:
    from pycni.cluster.etcd import EtcdKV

    return EtcdKV(list(options.etcd_endpoints), ca_file=options.etcd_ca_file, cert_file=options.etcd_cert_file,
                  key_file=options.etcd_key_file)


def _load_config(manager: SubnetManager, stop: threading.Event) -> ClusterConfig | None:
    """The cluster config, waiting for the datastore (and for someone to store a config) as long as it takes."""

    def report(exc: Exception, delay: float) -> None:
        log.warning("cannot read the cluster config yet (retrying): %s", exc)

    return retry_until_stopped(manager.load_config, stop, Backoff(0.5, 5.0), on_error=report)


def _start(name: str, target: Callable[[threading.Event], None], stop: threading.Event) -> threading.Thread:
    thread = threading.Thread(target=target, args=(stop,), name=f"pycni-agent-{name}", daemon=True)
    thread.start()
    return thread


def _start_services(factories: Sequence[ServiceFactory], store: KV, metrics: AgentMetrics,
                    stop: threading.Event) -> list[NodeService]:
    """Start each service, retrying while it fails (etcd not there yet); [] if stopped first."""
    started: list[NodeService] = []
    for factory in factories:
        service = factory(store, metrics)
        name = type(service).__name__

        def attempt(service: NodeService = service) -> bool:
            service.start()
            return True

        def report(exc: Exception, delay: float, name: str = name) -> None:
            log.warning("%s did not start yet (retrying): %s", name, exc)

        if retry_until_stopped(attempt, stop, Backoff(0.5, 5.0), on_error=report) is None:
            break
        started.append(service)
    return started


def run_agent(options: AgentOptions, stop: threading.Event, *, kv: KV | None = None,
              services: Sequence[ServiceFactory] = ()) -> int:
    from pycni.cluster.backends import make_backend
    from pycni.cluster.backends.wireguard_lease import LeaseAccess
    from pycni.cluster.dualstack import dual_stack_refusal, lease_v6_attrs
    from pycni.cluster.lease_keeper import LeaseKeeper
    from pycni.cluster.peer_watcher import PeerWatcher
    from pycni.cluster.reconciler import Reconciler
    from pycni.cluster.stranded import previous_subnet
    from pycni.cluster.subnets import SubnetManager
    from pycni.cluster.underlay import find_underlay

    metrics = AgentMetrics()
    server = None
    if options.metrics_addr:
        from pycni.cluster.agent_metrics import serve

        server = serve(options.metrics_addr, metrics)
        log.info("metrics on http://%s:%d/metrics", *server.server_address[:2])
    store = kv if kv is not None else _connect(options)
    manager = SubnetManager(store, options.etcd_prefix, ttl=options.lease_ttl)
    running: list[NodeService] = []
    try:
        config = _load_config(manager, stop)
        if config is None:
            return 0
        running = _start_services(services, store, metrics, stop)
        if len(running) < len(services):
            return 0
        refusal = dual_stack_refusal(config)
        if refusal is not None:
            log.error("%s", refusal)
            return 2
        underlay = find_underlay(options.iface, options.public_ip, ipv6=config.ipv6 is not None,
                                 public_ipv6=options.public_ipv6, ipv4=config.network is not None)
        backend = make_backend(config.backend.type, underlay, options.node_name, vni=config.backend.vni,
                               port=config.backend.port, mtu=config.backend.mtu, bgp=config.backend.bgp,
                               network=config.network, run_dir=options.files.run_dir,
                               wireguard=config.backend.wireguard, lease=LeaseAccess(store, manager.subnet_key))
        log.info("node %s: underlay %s on %s (mtu %d), backend %s, pod mtu %d", options.node_name,
                 underlay.ip or underlay.ipv6,
                 underlay.iface, underlay.mtu, backend.type, backend.pod_mtu())
        reconciler = Reconciler(backend, config.network, options.files, metrics, masquerade=options.masquerade,
                                cluster6=config.ipv6.network if config.ipv6 else None)
        # The pod MTU rides in the lease so peers (and pycni doctor) can compare MTUs across nodes.
        lease_data = {**backend.backend_data(), "podMTU": backend.pod_mtu()}
        public_ip = underlay.ip or underlay.ipv6  # IPv6-only: find_underlay made sure of an IPv6 address
        assert public_ip is not None
        keeper = LeaseKeeper(manager, options.node_name, public_ip, lease_data, ttl=options.lease_ttl,
                             on_lease=reconciler.set_own, metrics=metrics,
                             prefer=lambda: previous_subnet(options.files.run_dir),  # where its pods are
                             v6=lease_v6_attrs(config, underlay, backend))
        watcher = PeerWatcher(manager, on_peers=reconciler.set_peers, metrics=metrics)
        threads = [_start("lease", keeper.run, stop), _start("watch", watcher.run, stop)]
        reconciler.run(stop, options.resync)
        reconciler.wake.set()
        for thread in threads:
            thread.join(timeout=2)
        if options.release_on_exit:
            leave = getattr(backend, "leave", None)  # bgp: withdraw the subnet before the lease goes
            if leave is not None:
                leave()
            try:
                manager.release(options.node_name)
                log.info("lease of %s released", options.node_name)
            except Exception as exc:
                log.warning("failed to release the lease of %s: %s", options.node_name, exc)
        return 0
    finally:
        for service in reversed(running):
            service.stop()
        if server is not None:
            server.shutdown()
        store.close()


def configure_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s")
    logging.Formatter.converter = time.gmtime
