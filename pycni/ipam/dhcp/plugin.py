"""The dhcp IPAM plugin: ADD, DEL, CHECK and STATUS are calls to the dhcp daemon; ``dhcp daemon`` runs it.

Contract:

- ADD asks the daemon (``ipam.daemonSocketPath``, default
  /run/cni/dhcp.sock) for the attachment's lease and returns its address,
  gateway and routes in the config's version. DEL asks it to release the
  lease; it returns once DHCPRELEASE has left on the pod's interface. CHECK
  fails unless the daemon holds the lease. STATUS fails with code 50 when no
  daemon answers. GC (spec 1.1.0) has the daemon release the network's
  leases of attachments outside ``cni.dev/valid-attachments``. The netns
  path is made absolute: the daemon may run in another working directory.
- ``command_line(argv)`` is what the installed plugin does with arguments:
  ``dhcp daemon [-socketpath PATH] [-pidfile PATH] [-hostprefix DIR]
  [-broadcast] [-timeout DUR] [-resendmax DUR] [-statedir DIR]``, the
  reference's flags (Go spellings: one or two dashes, ``-flag=value``,
  durations like ``10s``) plus ``-statedir``, where leases are kept for a
  restarted daemon (default /var/lib/pycni/dhcp).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

from pycni import skel
from pycni.ipam.dhcp.conf import DEFAULT_SOCKET, socket_path
from pycni.ipam.dhcp.rpc import call
from pycni.spec.result import Result

__all__ = ["cmd_add", "cmd_check", "cmd_del", "cmd_gc", "cmd_status", "command_line", "parse_duration"]


def _call(method: str, args: skel.CmdArgs, **extra: Any) -> dict[str, Any]:
    request = {
        **extra,
        "method": method,
        "containerID": args.container_id,
        "netns": os.path.abspath(args.netns) if args.netns else "",
        "ifName": args.ifname,
        "args": args.args,
        "config": args.config,
    }
    return call(socket_path(args.config), request)


def cmd_add(args: skel.CmdArgs) -> Result:
    return Result.from_wire(_call("allocate", args)).with_version(args.cni_version)


def cmd_del(args: skel.CmdArgs) -> None:
    _call("release", args)


def cmd_check(args: skel.CmdArgs) -> None:
    _call("check", args)


def cmd_status(args: skel.CmdArgs) -> None:
    _call("status", args)


def cmd_gc(args: skel.CmdArgs) -> None:
    _call("gc", args, valid=[list(pair) for pair in args.valid_attachments()])


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a Go duration (``10s``, ``1m30s``, ``500ms``) or a plain number of seconds."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (e.g. 10s, 1m30s, 500ms)")
    return total


def _daemon_parser() -> argparse.ArgumentParser:
    from pycni.ipam.dhcp.store import DEFAULT_STATE_DIR

    parser = argparse.ArgumentParser(prog="dhcp daemon", description="Keep DHCP leases for the dhcp IPAM plugin.")

    def flag(name: str, **kw: Any) -> None:
        parser.add_argument(f"-{name}", f"--{name}", dest=name, **kw)

    flag("socketpath", default=DEFAULT_SOCKET, help=f"the socket to listen on (default {DEFAULT_SOCKET})")
    flag("pidfile", default="", help="write the daemon's pid to this absolute path")
    flag("hostprefix", default="", help="prefix of the host's root (a daemon running in a container)")
    flag("broadcast", nargs="?", const="true", default="false", help="ask servers to broadcast their replies")
    flag("timeout", type=parse_duration, default=10.0, help="how long one DHCP exchange may take (default 10s)")
    flag("resendmax", type=parse_duration, default=62.0, help="longest wait between resends (default 62s)")
    flag("statedir", default=DEFAULT_STATE_DIR, help=f"where leases are kept (default {DEFAULT_STATE_DIR})")
    return parser


def command_line(argv: Sequence[str]) -> int:
    """``dhcp <argv>``: ``daemon [flags]`` runs the daemon; the exit code."""
    if not argv or argv[0] != "daemon":
        print(f"dhcp: unknown command {' '.join(argv)!r}; did you mean 'dhcp daemon'?", file=sys.stderr)
        return 2
    from pycni.ipam.dhcp.client import Timing
    from pycni.ipam.dhcp.daemon import DaemonOptions, serve

    ns = _daemon_parser().parse_args(list(argv[1:]))
    if ns.pidfile and not os.path.isabs(ns.pidfile):
        print(f"dhcp daemon: error writing pidfile {ns.pidfile!r}: path not absolute", file=sys.stderr)
        return 1
    broadcast = str(ns.broadcast).lower() in ("1", "t", "true")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s dhcp: %(message)s", stream=sys.stderr)
    options = DaemonOptions(
        socket_path=ns.socketpath,
        state_dir=ns.statedir,
        pidfile=ns.pidfile,
        host_prefix=ns.hostprefix,
        broadcast=broadcast,
        timing=Timing(timeout=ns.timeout, resend_max=ns.resendmax),
    )
    try:
        serve(options)
    except OSError as exc:
        print(f"dhcp daemon: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1:
        sys.exit(command_line(sys.argv[1:]))
    from pycni.registry import load_plugin

    skel.main(load_plugin("dhcp"))
