"""``pycni agent``: the node agent (see pycni.cluster.agent). Runs until SIGTERM or SIGINT.

With ``--policy on`` (the default) it also runs the NetworkPolicy agent
(pycni.policy.node_service) on ``<run-dir>/policy.sock`` and the conflist
chains ``netpol`` to it; this module is where the two are composed, because
cluster/ must not import policy/.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from ipaddress import IPv4Address, IPv6Address

from pycni.rundir import DEFAULT_RUN_DIR

__all__ = ["add_arguments", "cmd_agent"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--node-name", default=None, help="this node's name (default: the host name)")
    p.add_argument("--etcd-endpoints", default="http://127.0.0.1:2379",
                   help="etcd client URLs, comma-separated (default http://127.0.0.1:2379)")
    p.add_argument("--etcd-cafile", help="CA bundle to verify etcd's certificate")
    p.add_argument("--etcd-certfile", help="client certificate for etcd")
    p.add_argument("--etcd-keyfile", help="client key for etcd")
    p.add_argument("--etcd-prefix", default="/pycni", help="key prefix of the cluster in etcd (default /pycni)")
    p.add_argument("--iface", help="underlay interface peers reach this node by (default: the default route's)")
    p.add_argument("--public-ip", type=IPv4Address, help="underlay address to publish (default: the iface's first)")
    p.add_argument("--public-ipv6", type=IPv6Address,
                   help="dual stack: IPv6 underlay address to publish (default: the iface's first global one)")
    p.add_argument("--cni-conf-dir", default="/etc/cni/net.d", help="where the conflist goes (default /etc/cni/net.d)")
    p.add_argument("--run-dir", default=DEFAULT_RUN_DIR, help=f"where subnet.env goes (default {DEFAULT_RUN_DIR})")
    p.add_argument("--network-name", default="pycni", help="CNI network name in the conflist (default pycni)")
    p.add_argument("--bridge", default="cni0", help="bridge the pods attach to (default cni0)")
    p.add_argument("--ipam-data-dir", help="host-local dataDir (default: host-local's, /var/lib/cni/networks)")
    p.add_argument("--metrics", metavar="ADDR", help="serve Prometheus metrics on HOST:PORT (/metrics)")
    p.add_argument("--lease-ttl", type=int, default=30, help="subnet lease TTL in seconds (default 30)")
    p.add_argument("--resync-interval", type=float, default=5.0,
                   help="seconds between reconcile passes that repair kernel state (default 5)")
    p.add_argument("--no-masquerade", action="store_true", help="do not masquerade pods leaving the cluster network")
    p.add_argument("--release-on-exit", action="store_true",
                   help="release the subnet lease on SIGTERM (default: keep it, so a restart changes nothing)")
    p.add_argument("--policy", choices=("on", "off"), default="on",
                   help="enforce Kubernetes NetworkPolicy on this node's pods (default on; needs br_netfilter)")
    p.add_argument("--policy-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="how long a pod's ADD waits for its policy to be enforced (default 10)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def cmd_agent(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    import logging
    import signal
    import socket
    import sys
    import threading

    from pycni.cluster.agent import AgentOptions, ServiceFactory, configure_logging, run_agent
    from pycni.cluster.reconciler import NodeFiles

    configure_logging(logging.DEBUG if args.verbose else logging.INFO)
    if not 0 < args.policy_timeout <= 300:
        print(f"pycni agent: --policy-timeout: must be in (0, 300] seconds, got {args.policy_timeout:g}",
              file=sys.stderr)
        return 2
    node_name = args.node_name or socket.gethostname()
    policy_socket = os.path.join(args.run_dir, "policy.sock") if args.policy == "on" else None
    services: list[ServiceFactory] = []
    if policy_socket:
        from pycni.policy.node_service import PolicyService, PolicyUnavailable, check_br_netfilter

        try:
            check_br_netfilter()
        except PolicyUnavailable as exc:
            print(f"pycni agent: {exc}", file=sys.stderr)
            return 1
        socket_path = os.path.abspath(policy_socket)
        run_dir = os.path.abspath(args.run_dir)
        services.append(lambda kv, metrics: PolicyService(kv, node_name, prefix=args.etcd_prefix,
                                                          socket_path=socket_path, metrics=metrics, run_dir=run_dir))
    options = AgentOptions(
        node_name=node_name,
        etcd_endpoints=tuple(e.strip() for e in args.etcd_endpoints.split(",") if e.strip()),
        etcd_prefix=args.etcd_prefix,
        etcd_ca_file=args.etcd_cafile,
        etcd_cert_file=args.etcd_certfile,
        etcd_key_file=args.etcd_keyfile,
        iface=args.iface,
        public_ip=args.public_ip,
        public_ipv6=args.public_ipv6,
        files=NodeFiles(conf_dir=args.cni_conf_dir, run_dir=args.run_dir, network_name=args.network_name,
                        bridge=args.bridge, ipam_data_dir=args.ipam_data_dir,
                        policy_socket=os.path.abspath(policy_socket) if policy_socket else None,
                        policy_timeout=args.policy_timeout),
        metrics_addr=args.metrics,
        lease_ttl=args.lease_ttl,
        resync=args.resync_interval,
        masquerade=not args.no_masquerade,
        release_on_exit=args.release_on_exit,
    )
    os.makedirs(options.files.run_dir, exist_ok=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return run_agent(options, stop, services=services)
