"""``pycni cluster init|show`` and ``pycni node list|remove``: the cluster config and leases in etcd.

Every command takes the etcd connection options of ``add_etcd_arguments``
(endpoints default to ``$PYCNI_ETCD_ENDPOINTS``, else
http://127.0.0.1:2379). Errors are one line and a non-zero exit (main.py).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterable, Mapping
from ipaddress import IPv4Network
from typing import TYPE_CHECKING, Any

from pycni.cli import bgp
from pycni.cli import wireguard as wg

if TYPE_CHECKING:
    from pycni.cluster.config import ClusterConfig
    from pycni.cluster.kv import KV
    from pycni.cluster.subnets import SubnetManager

__all__ = [
    "add_cluster_arguments",
    "add_etcd_arguments",
    "add_node_arguments",
    "cmd_cluster",
    "cmd_node",
    "connect",
    "host_overlaps",
]

DEFAULT_ENDPOINTS = "http://127.0.0.1:2379"


def add_etcd_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("etcd")
    g.add_argument("--etcd-endpoints", metavar="URL[,URL]",
                   help=f"etcd client URLs (default $PYCNI_ETCD_ENDPOINTS, else {DEFAULT_ENDPOINTS})")
    g.add_argument("--etcd-prefix", default="/pycni", help="key prefix of the cluster (default /pycni)")
    g.add_argument("--etcd-cafile", help="CA bundle that signed etcd's certificate (https endpoints)")
    g.add_argument("--etcd-certfile", help="client certificate for etcd")
    g.add_argument("--etcd-keyfile", help="key of the client certificate")


def add_cluster_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="cluster_command", metavar="SUBCOMMAND")
    sub.required = True
    init = sub.add_parser(
        "init",
        help="store the cluster network config in etcd",
        description="Validate and store the cluster's pod network config (Flannel's field names) under the "
        "prefix. Storing the same config again is a no-op; a different one needs --force and must still hold "
        "every live lease.",
    )
    add_etcd_arguments(init)
    init.add_argument("--network", help="the pod network, e.g. 10.244.0.0/16 (required unless --no-ipv4)")
    init.add_argument("--subnet-len", type=int, help="prefix length of each node's subnet (default 24)")
    init.add_argument("--subnet-min", help="first subnet nodes may get (default: the network's second)")
    init.add_argument("--subnet-max", help="last subnet nodes may get (default: the network's last)")
    init.add_argument("--ipv6-network", metavar="CIDR", help="dual stack: the IPv6 pod network (EnableIPv6)")
    init.add_argument("--ipv6-subnet-len", type=int, metavar="N", help="prefix length of each node's IPv6 subnet "
                      "(default 64)")
    init.add_argument("--no-ipv4", action="store_true", help="IPv6-only: no IPv4 pod network (EnableIPv4 false; "
                      "needs --ipv6-network)")
    init.add_argument("--backend", choices=("vxlan", "host-gw", "bgp", "wireguard"), default="vxlan",
                      help="how nodes reach each other's pods (default vxlan)")
    init.add_argument("--vni", type=int, help="VXLAN network identifier (default 1)")
    init.add_argument("--port", type=int, help="VXLAN UDP port (default 8472, Flannel's)")
    init.add_argument("--mtu", type=int, help="pod MTU (default: the underlay's, less the VXLAN overhead)")
    init.add_argument("--quarantine", type=int, metavar="SECONDS",
                      help="how long an expired node's subnet is kept from other nodes (default 300)")
    bgp.add_init_arguments(init)
    wg.add_init_arguments(init)
    init.add_argument("--force", action="store_true",
                      help="replace a different existing config; allow a network that overlaps this host's")
    show = sub.add_parser("show", help="print the cluster config and the leases")
    add_etcd_arguments(show)
    show.add_argument("-o", "--output", choices=("table", "json"), default="table")


def add_node_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="node_command", metavar="SUBCOMMAND")
    sub.required = True
    listing = sub.add_parser("list", help="nodes with a lease, or whose lease ended (quarantine)")
    add_etcd_arguments(listing)
    listing.add_argument("-o", "--output", choices=("table", "json"), default="table")
    remove = sub.add_parser(
        "remove",
        help="release a node's subnet lease; peers drop its routes",
        description="Delete the node's lease and end its subnet's quarantine: peers drop its routes at once "
        "and the subnet is free for other nodes. An agent still running on that node takes a lease again.",
    )
    add_etcd_arguments(remove)
    remove.add_argument("name", help="node name")
    bgp.add_status_parser(sub)
    wg.add_rotate_parser(sub, add_etcd_arguments)


def connect(args: argparse.Namespace, environ: Mapping[str, str]) -> KV:
    from pycni.cluster.etcd import etcd_client  # `pycni apply` on a lab runs in a thread in the lab's underlay

    endpoints = args.etcd_endpoints or environ.get("PYCNI_ETCD_ENDPOINTS") or DEFAULT_ENDPOINTS
    return etcd_client(endpoints, ca_file=args.etcd_cafile, cert_file=args.etcd_certfile, key_file=args.etcd_keyfile,
                  retry_for=5.0)


def _manager(args: argparse.Namespace, environ: Mapping[str, str]) -> SubnetManager:
    from pycni.cluster.subnets import SubnetManager

    return SubnetManager(connect(args, environ), args.etcd_prefix)


def cmd_cluster(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    if args.cluster_command == "init":
        return _init(args, environ)
    return _show(args, environ)


def cmd_node(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    if args.node_command == "status":  # reads the node's bird, not etcd
        return bgp.cmd_status(args, environ)
    if args.node_command == "rotate-key":
        return wg.cmd_rotate_key(args, connect(args, environ))
    sm = _manager(args, environ)
    try:
        if args.node_command == "remove":
            return _remove(sm, args.name)
        return _list(sm, args.output)
    finally:
        sm.kv.close()


# -- cluster init ---------------------------------------------------------------------


def config_from_args(args: argparse.Namespace) -> ClusterConfig:
    """The config the flags describe, validated with the wire format's field names in errors."""
    from pycni.cluster.config import ClusterConfig

    wire: dict[str, Any] = {"EnableIPv4": False} if args.no_ipv4 else {}
    if args.network is not None or not args.no_ipv4:
        wire["Network"] = args.network
    if args.subnet_len is not None:
        wire["SubnetLen"] = args.subnet_len
    if args.subnet_min:
        wire["SubnetMin"] = args.subnet_min
    if args.subnet_max:
        wire["SubnetMax"] = args.subnet_max
    backend: dict[str, Any] = {"Type": args.backend}
    for flag, name in (("vni", "VNI"), ("port", "Port"), ("mtu", "MTU")):
        if getattr(args, flag) is not None:
            backend[name] = getattr(args, flag)
    backend.update(bgp.backend_fields(args))
    backend.update(wg.backend_fields(args))
    wire["Backend"] = backend
    if args.quarantine is not None:
        wire["Quarantine"] = args.quarantine
    if args.ipv6_network is not None or args.ipv6_subnet_len is not None or args.no_ipv4:  # config_v6.py
        wire.update({"EnableIPv6": True, "IPv6Network": args.ipv6_network, "IPv6SubnetLen": args.ipv6_subnet_len})
    return ClusterConfig.from_wire(wire)


def host_overlaps(network: IPv4Network, routes: Iterable[tuple[IPv4Network, str]],
                  ignore: IPv4Network | None = None) -> list[str]:
    """This host's connected networks that ``network`` overlaps, as ``"10.0.2.0/24 on eth0"``.

    ``routes`` are (destination, device) of directly connected routes; those inside ``ignore`` (the
    network stored already: its pod subnets on this node) don't count, nor do default routes."""
    found = []
    for dst, dev in routes:
        if dst.prefixlen == 0 or (ignore is not None and dst.subnet_of(ignore)):
            continue
        if dst.overlaps(network):
            found.append(f"{dst} on {dev or '?'}")
    return sorted(set(found))


def _connected_routes() -> list[tuple[IPv4Network, str]]:
    """This host's directly connected IPv4 networks (best effort: none when netlink is not at hand)."""
    try:
        from pycni.net.routes import RT_SCOPE_LINK, list_routes

        return [(r.dst, r.dev) for r in list_routes(family=4)
                if r.scope == RT_SCOPE_LINK and r.gw is None and isinstance(r.dst, IPv4Network)]
    except Exception:
        return []


def _init(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from pycni.cluster.lease import ClusterNotInitialized
    from pycni.spec.errors import InvalidConfig

    cfg = config_from_args(args)
    sm = _manager(args, environ)
    try:
        try:
            stored: ClusterConfig | None = sm.load_config()
        except ClusterNotInitialized:
            stored = None
        except InvalidConfig:
            stored = None  # unreadable; init_config says so unless --force
        if not args.force and cfg.network is not None:  # (IPv6-only: no IPv4 Network to overlap)
            overlaps = host_overlaps(cfg.network, _connected_routes(), stored.network if stored else None)
            if overlaps:
                raise InvalidConfig(
                    f"Network: {cfg.network} overlaps this host's network {overlaps[0]}: pods could not reach "
                    "it; pick another range (or --force)"
                )
        sm.init_config(cfg, force=args.force)
    finally:
        sm.kv.close()
    verb = "unchanged" if stored == cfg else "replaced" if stored else "stored"
    print(f"cluster config {verb} at {sm.config_key}: {cfg.describe()}")
    return 0


# -- cluster show ------------------------------------------------------------------------


def _show(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from pycni.cluster.nodes import describe_in, format_table

    sm = _manager(args, environ)
    try:
        cfg, states = sm.subnet_states()
    finally:
        sm.kv.close()
    now = time.time()
    leased = [s for s in states if s.status == "leased"]
    quarantined = [s for s in states if s.status == "quarantined"]
    if args.output == "json":
        out = {
            "config": cfg.to_wire(),
            "leases": [_lease_json(s) for s in leased],
            "quarantined": [
                {"Subnet": str(s.subnet), "LastNode": s.history.node if s.history else None,
                 "ExpiredAt": s.history.expired_at if s.history else None, "FreeAt": s.free_at}
                for s in quarantined
            ],
        }
        print(json.dumps(out, indent=2))
        return 0
    backend = cfg.backend
    details = [backend.type]
    if backend.type == "vxlan":
        details += [f"VNI {backend.vni}", f"port {backend.port}"]
    details.append(f"MTU {backend.mtu}" if backend.mtu is not None else "MTU from the underlay")
    free = cfg.subnet_count - sum(1 for s in leased if cfg.contains(s.subnet)) - sum(
        1 for s in quarantined if cfg.contains(s.subnet))
    print(f"cluster {sm.prefix} at {', '.join(getattr(sm.kv, 'endpoints', []))}")
    info = [
        ("Network", str(cfg.network) if cfg.network is not None else f"{cfg.lease_network} (IPv6-only)"),
        ("SubnetLen", f"{cfg.lease_len} ({cfg.subnet_count} subnets, {cfg.first} to {cfg.last})"),
        ("Backend", ", ".join(details)),
        ("Quarantine", f"{sm.quarantine:.0f}s"),
        ("Leases", f"{len(leased)} live, {len(quarantined)} quarantined, {free} free"),
    ] + ([("IPv6", cfg.ipv6.describe() + ", paired with the IPv4 subnet")] if cfg.ipv6 and cfg.network else [])
    width = max(len(name) for name, _ in info)
    for name, value in info:
        print(f"  {name.ljust(width)}  {value}")
    print()
    rows = []
    for s in leased:
        lease = s.lease
        if lease is None:
            rows.append(("?", str(s.subnet), "-", "-", "unreadable lease"))
            continue
        rows.append((lease.node, str(s.subnet), str(lease.public_ip), lease.backend_type,
                     describe_in(lease.expires_at, now)))
    print(format_table(("NODE", "SUBNET", "PUBLIC-IP", "BACKEND", "EXPIRES"), rows) if rows else "no leases")
    if quarantined:
        print()
        print(format_table(("QUARANTINED", "LAST-NODE", "EXPIRED", "FREE"), [
            (str(s.subnet), s.history.node if s.history else "-",
             describe_in(s.history.expired_at if s.history else None, now),
             describe_in(s.free_at, now) if s.free_at is not None else f"in {sm.quarantine:.0f}s")
            for s in quarantined
        ]))
    return 0


def _lease_json(state: Any) -> dict[str, Any]:
    lease = state.lease
    if lease is None:
        return {"Subnet": str(state.subnet), "Node": None}
    return {"Node": lease.node, "Subnet": str(lease.subnet), "PublicIP": str(lease.public_ip),
            "BackendType": lease.backend_type, "BackendData": dict(lease.backend_data),
            "ExpiresAt": lease.expires_at, **(lease.v6.to_wire() if lease.v6 is not None else {})}


# -- node list / remove ---------------------------------------------------------------------


def _list(sm: SubnetManager, output: str) -> int:
    from pycni.cluster.nodes import format_table, node_rows

    _, states = sm.subnet_states()
    rows = node_rows(states)
    now = time.time()
    if output == "json":
        print(json.dumps([
            {"Name": r.name, "Subnet": str(r.subnet), "PublicIP": r.public_ip, "State": r.state,
             "ExpiresAt": r.expires_at, "EndedAt": r.ended_at, "SubnetFreeAt": r.free_at,
             "BackendType": r.backend, "BackendData": dict(r.backend_data)}
            for r in rows
        ], indent=2))
        return 0
    if not rows:
        print("no nodes")
        return 0
    print(format_table(("NAME", "SUBNET", "PUBLIC-IP", "STATUS"),
                       [(r.name, str(r.subnet), r.public_ip, r.status(now)) for r in rows]))
    return 0


def _remove(sm: SubnetManager, name: str) -> int:
    from pycni.cluster.nodes import node_rows
    from pycni.spec.errors import CniError

    _, states = sm.subnet_states()
    rows = [r for r in node_rows(states) if r.name == name]
    if not rows:
        known = sorted(r.name for r in node_rows(states))
        raise CniError(f"no node named {name!r}" + (f" (known: {', '.join(known)})" if known else ""))
    if sm.release(name):
        print(f"released node {name} (subnet {rows[0].subnet} is free)")
    else:
        print(f"node {name} holds nothing to release (subnet {rows[0].subnet} is free)")
    return 0
