"""``pycni doctor``: why pod networking is broken on this node, and the fix (see pycni.doctor).

    pycni doctor                       the node this runs on, with the agent's defaults
    pycni doctor --json                {"node": ..., "checks": [{"id", "status", "summary", "evidence", "fix"}]}
    pycni doctor --probe               also ping every peer (gateway, and don't-fragment at pod MTU - 28)
    pycni doctor --explain "<error>"   which cause a runtime's error message means, and the fix
    pycni doctor --ignore ID ...       report ID but do not fail on it (kubeadm's preflight does the same)

Exit status: 0 nothing fails (warnings allowed), 1 a check fails, 2 doctor
cannot run (bad arguments, or --explain finds no known cause). The flags
and defaults are the agent's (pycni.cli.agent), so a bare ``pycni doctor``
looks where the agent writes; the node name defaults to the one in the
agent's status file, else the host name.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Mapping

from pycni.rundir import DEFAULT_RUN_DIR

__all__ = ["add_arguments", "cmd_doctor"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--node-name", default=None,
                   help="this node's name (default: the agent's, from its status file; else the host name)")
    p.add_argument("--etcd-endpoints", default="http://127.0.0.1:2379",
                   help="etcd client URLs, comma-separated (default http://127.0.0.1:2379)")
    p.add_argument("--etcd-cafile", help="CA bundle to verify etcd's certificate")
    p.add_argument("--etcd-certfile", help="client certificate for etcd")
    p.add_argument("--etcd-keyfile", help="client key for etcd")
    p.add_argument("--etcd-prefix", default="/pycni", help="key prefix of the cluster in etcd (default /pycni)")
    p.add_argument("--iface", help="underlay interface (default: the one holding the leased address)")
    p.add_argument("--cni-conf-dir", default="/etc/cni/net.d", help="the runtime's conf dir (default /etc/cni/net.d)")
    p.add_argument("--cni-bin-dir", default=None,
                   help="plugin directories, ':'-separated (default $CNI_PATH, else /opt/cni/bin)")
    p.add_argument("--cache-dir", default=None, help="the runtime's result cache (default $CNI_CACHE_DIR, "
                   "else /var/lib/cni)")
    p.add_argument("--run-dir", default=DEFAULT_RUN_DIR, help=f"the agent's run dir (default {DEFAULT_RUN_DIR})")
    p.add_argument("--network-name", default="pycni", help="CNI network name (default pycni)")
    p.add_argument("--bridge", default="cni0", help="bridge the pods attach to (default cni0)")
    p.add_argument("--ipam-data-dir", default=None,
                   help="host-local dataDir (default: the config's, else /var/lib/cni/networks)")
    p.add_argument("--json", action="store_true", help="one JSON document instead of lines for people")
    p.add_argument("--probe", action="store_true",
                   help="ping every peer's overlay address, and a don't-fragment ping at pod MTU - 28")
    p.add_argument("--no-synthetic", action="store_true", help="skip the throw-away ADD/CHECK/DEL")
    p.add_argument("--ignore", action="append", default=[], metavar="ID",
                   help="report check ID but do not fail on it (repeatable, or comma-separated; 'all')")
    p.add_argument("--explain", metavar="MESSAGE", help="explain a runtime's error message and exit")
    p.add_argument("-v", "--verbose", action="store_true", help="show evidence of passing checks too")
    # The agent's other flags are accepted and ignored, so its command line can be reused as it is.
    for flag in ("--public-ip", "--metrics", "--lease-ttl", "--resync-interval", "--policy", "--policy-timeout"):
        p.add_argument(flag, help=argparse.SUPPRESS)
    for flag in ("--no-masquerade", "--release-on-exit"):
        p.add_argument(flag, action="store_true", help=argparse.SUPPRESS)


def _node_name(args: argparse.Namespace) -> str:
    if args.node_name:
        return str(args.node_name)
    from pycni.cluster.status_file import STATUS_FILE, parse_status

    try:
        with open(os.path.join(args.run_dir, STATUS_FILE), encoding="utf-8") as f:
            return parse_status(f.read()).node
    except (OSError, ValueError):
        return socket.gethostname()


def cmd_doctor(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    if args.explain is not None:
        return _explain(args.explain, as_json=args.json)
    from pycni.doctor.diagnose import diagnose
    from pycni.doctor.report import render_json, render_text
    from pycni.doctor.run import CHECK_IDS
    from pycni.doctor.snapshot import Options

    ignore = {i.strip() for item in args.ignore for i in item.split(",") if i.strip()}
    if "all" in ignore:
        ignore = set(CHECK_IDS)
    unknown = sorted(ignore - set(CHECK_IDS))
    if unknown:
        print(f"pycni doctor: --ignore: unknown check id {unknown[0]!r} (known: {', '.join(CHECK_IDS)})",
              file=sys.stderr)
        return 2
    bin_dirs = tuple(d for d in (args.cni_bin_dir or environ.get("CNI_PATH") or "/opt/cni/bin").split(":") if d)
    cache_dir = args.cache_dir or environ.get("CNI_CACHE_DIR") or "/var/lib/cni"
    options = Options(
        node_name=_node_name(args), conf_dir=args.cni_conf_dir, run_dir=args.run_dir, bin_dirs=bin_dirs,
        cache_dir=cache_dir, ipam_data_dir=args.ipam_data_dir or "/var/lib/cni/networks",
        network_name=args.network_name, bridge=args.bridge, iface=args.iface,
        etcd_endpoints=tuple(e.strip() for e in args.etcd_endpoints.split(",") if e.strip()),
        etcd_prefix=args.etcd_prefix,
    )
    tls = (args.etcd_cafile, args.etcd_certfile, args.etcd_keyfile)
    try:
        diagnosis = diagnose(options, tls=tls, probe=args.probe, synthetic=not args.no_synthetic, ignore=ignore)
    except Exception as exc:  # doctor itself could not run: exit 2, never a verdict about the node
        print(f"pycni doctor: cannot run: {exc}", file=sys.stderr)
        return 2
    if args.json:
        sys.stdout.write(render_json(options.node_name, diagnosis.results, diagnosis.seconds))
    else:
        sys.stdout.write(render_text(options.node_name, diagnosis.results, diagnosis.seconds, verbose=args.verbose))
    from pycni.doctor.run import exit_code

    return exit_code(diagnosis.results, ignore)


def _explain(message: str, *, as_json: bool) -> int:
    import json

    from pycni.doctor.explain import explain

    cause = explain(message)
    if as_json:
        doc = {"message": message, "cause": None if cause is None else
               {"id": cause.id, "summary": cause.summary, "fix": cause.fix}}
        print(json.dumps(doc, indent=2))
    elif cause is None:
        print("no known cause matches this message; run pycni doctor on the node", file=sys.stderr)
    else:
        print(f"cause: {cause.id}\n  {cause.summary}\nfix:   {cause.fix}\n(run pycni doctor on the node to confirm)")
    return 0 if cause is not None else 2
