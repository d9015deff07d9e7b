"""The bgp backend's command-line parts: ``cluster init --bgp-*`` flags and ``pycni node status``.

``pycni node status [-o json] [--run-dir DIR | --socket PATH]`` is
``calicoctl node status`` for pycni: whether the node's bird runs, then each
BGP session with the peer's address, type (node-to-node mesh, global,
route reflector, reflector client), bird's state, since when (UTC) and info
(BGP state and the last error), read from bird's control socket
(``<run-dir>/bird/bird.ctl``). Exit 1 when bird does not answer.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["add_init_arguments", "add_status_parser", "backend_fields", "cmd_status"]


def add_init_arguments(init: argparse.ArgumentParser) -> None:
    g = init.add_argument_group("bgp backend")
    g.add_argument("--bgp-asn", type=int, help="the cluster's AS number (default 64512)")
    g.add_argument("--bgp-peer", action="append", default=[], metavar="IP:ASN",
                   help="a global peer every node opens a session to, e.g. a top-of-rack router; repeatable")
    g.add_argument("--bgp-mesh", choices=("on", "off"), help="full node-to-node mesh (default on, off with reflectors)")
    g.add_argument("--bgp-route-reflectors", metavar="NODE,...",
                   help="nodes that reflect routes; the other nodes peer only with them")


def backend_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The Backend fields the --bgp-* flags set (validated with the rest by ClusterConfig.from_wire)."""
    from pycni.cluster.backends.bgp_config import BgpPeer

    out: dict[str, Any] = {}
    if args.bgp_asn is not None:
        out["ASN"] = args.bgp_asn
    if args.bgp_mesh is not None:
        out["Mesh"] = args.bgp_mesh == "on"
    if args.bgp_peer:
        out["Peers"] = [BgpPeer.parse(text).to_wire() for text in args.bgp_peer]
    if args.bgp_route_reflectors:
        out["RouteReflectors"] = [n.strip() for n in args.bgp_route_reflectors.split(",") if n.strip()]
    if out and args.backend != "bgp":
        from pycni.spec.errors import InvalidConfig

        raise InvalidConfig(f"--bgp-*: only apply to --backend bgp, not {args.backend}")
    return out


def add_status_parser(sub: Any) -> None:
    status = sub.add_parser("status", help="this node's BGP sessions, from its bird (like calicoctl node status)")
    status.add_argument("-o", "--output", choices=("table", "json"), default="table")
    status.add_argument("--run-dir", help="the agent's run dir (default $PYCNI_RUN_DIR, else /run/pycni)")
    status.add_argument("--socket", help="bird's control socket (default <run-dir>/bird/bird.ctl)")


def _since(value: int | str) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(value)) if isinstance(value, int) else value


def cmd_status(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from pycni.cluster.backends.bgp_bird import BirdPaths, BirdSupervisor
    from pycni.cluster.backends.bgp_control import BirdError, query
    from pycni.cluster.backends.bgp_status import bgp_peers, parse_protocols
    from pycni.rundir import run_dir

    paths = BirdPaths.under(args.run_dir or run_dir(environ))
    socket = args.socket or paths.socket
    pid = BirdSupervisor(paths).pid()
    try:
        peers = bgp_peers(parse_protocols(query(socket, "show protocols all")))
    except BirdError as exc:
        if args.output == "json":
            print(json.dumps({"running": False, "socket": socket, "error": str(exc), "peers": []}, indent=2))
        else:
            print(f"bird is not running: {exc}")
        return 1
    if args.output == "json":
        print(json.dumps({"running": True, "pid": pid, "socket": socket, "peers": [p.to_wire() for p in peers]},
                         indent=2))
        return 0
    print(f"bird is running (pid {pid if pid is not None else '?'}, socket {socket}).")
    print()
    print("IPv4 BGP status")
    rows = [["PEER ADDRESS", "PEER TYPE", "STATE", "SINCE (UTC)", "INFO"]]
    rows += [[p.address, p.type, p.state, _since(p.since), p.info] for p in peers]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    if not peers:
        print("(no BGP sessions)")
    return 0
