"""Entry point of the ``pycni`` command: argument parsing and error reporting.

Every subcommand lives in its own module and is imported only when chosen,
so ``pycni version`` does not pay for the runtime library.
Errors are one line on stderr and a non-zero exit; ``PYCNI_DEBUG=1`` adds
the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

ENV_HELP = """\
environment (as cnitool):
  NETCONFPATH   directory of network configs (default /etc/cni/net.d)
  CNI_PATH      plugin directories, ':'-separated (default /opt/cni/bin)
  CNI_IFNAME    interface name in the container (default eth0)
  CNI_ARGS      extra plugin arguments, 'K1=V1;K2=V2'
  CAP_ARGS      capability arguments as a JSON object, e.g. '{"portMappings": [...]}'
  CNI_CACHE_DIR result cache directory (default /var/lib/cni)
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pycni",
        description="Container Network Interface toolkit: run CNI plugins as a runtime does (cnitool verbs), "
        "install them, and run the executor, the cluster node agent (with NetworkPolicy) and a multi-node lab; "
        "keep Kubernetes objects in etcd (apply/get/label/delete) and explain policy verdicts.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=ENV_HELP,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    for name, text in (
        ("add", "attach the namespace to the network and print the result"),
        ("check", "check an attachment made by 'add'"),
        ("del", "detach the namespace from the network"),
    ):
        p = sub.add_parser(name, help=text, description=text, epilog=ENV_HELP,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("network", help="network name (the 'name' field of a config in NETCONFPATH)")
        p.add_argument("netns", help="network namespace path, e.g. /run/netns/blue")
        p.add_argument("-i", "--ifname", help="interface name in the container (overrides CNI_IFNAME)")

    p = sub.add_parser("status", help="ask the network's plugins whether they can serve ADD")
    p.add_argument("network")
    p = sub.add_parser(
        "gc",
        help="remove attachments of a network whose namespace is gone, then let plugins clean up",
        description="Cached attachments whose network namespace still exists are valid; the others are "
        "deleted (DEL with their cached arguments). Plugins then get GC with the valid set.",
    )
    p.add_argument("network")
    p = sub.add_parser("version", help="print pycni's version, or a plugin's supported spec versions")
    p.add_argument("plugin", nargs="?", help="plugin type to ask (looked up on CNI_PATH)")

    p = sub.add_parser("install", help="install pycni's plugins into a CNI bin dir")
    p.add_argument("--bin-dir", default="/opt/cni/bin", help="where runtimes look for plugins (default /opt/cni/bin)")
    p.add_argument("--force", action="store_true", help="replace plugin files that pycni did not install")
    p.add_argument("plugins", nargs="*", metavar="TYPE", help="plugin types to install (default: all)")
    p.add_argument("--executor", action="store_true",
                   help="also install the executor's systemd units and enable its socket (where systemd runs)")
    p.add_argument("--systemd-dir", default="/etc/systemd/system", help="where --executor writes the units")
    p.add_argument("--executor-socket",
                   help="executor socket the plugins forward to (default /run/pycni/executor.sock)")
    p.add_argument("--shim", choices=("auto", "c", "python"), default="auto",
                   help="plugin files: 'c' compiled with cc (no Python start-up when the executor answers), "
                        "'python' scripts, 'auto' (default) c where a C compiler works, else python")
    p = sub.add_parser("uninstall", help="remove the plugins 'pycni install' put into a CNI bin dir")
    p.add_argument("--bin-dir", default="/opt/cni/bin")

    from pycni.executor.command import add_arguments as executor_arguments

    p = sub.add_parser("executor", help="run the warm executor daemon that the installed plugins forward to")
    executor_arguments(p)

    from pycni.cli.agent import add_arguments as agent_arguments

    p = sub.add_parser("agent", help="run the cluster node agent (subnet lease, vxlan/host-gw routes, conflist)")
    agent_arguments(p)

    from pycni.cli.lab import add_arguments as lab_arguments

    p = sub.add_parser("lab", help="a multi-node cluster on this machine, in network namespaces (demos, tests)")
    lab_arguments(p)

    from pycni.cli.cluster import add_cluster_arguments, add_node_arguments

    p = sub.add_parser("cluster", help="the cluster network config in etcd: init, show")
    add_cluster_arguments(p)
    p = sub.add_parser("node", help="cluster nodes and their subnet leases: list, remove; status: its BGP sessions")
    add_node_arguments(p)

    from pycni.cli.objects import add_object_commands

    add_object_commands(sub)  # apply, delete, get, label: Kubernetes objects in etcd

    from pycni.cli.doctor import add_arguments as doctor_arguments

    doctor_arguments(sub.add_parser("doctor", help="find why pod networking is broken on this node, and the fix"))

    from pycni.cli.policy import add_arguments as policy_arguments

    p = sub.add_parser("policy", help="NetworkPolicy: explain a verdict, follow denied connections")
    policy_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        code = _run(args)
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:  # one clear line, never a traceback unless asked
        if os.environ.get("PYCNI_DEBUG") == "1":
            import traceback

            traceback.print_exc()
        print(f"pycni: {_describe(exc)}", file=sys.stderr)
        code = 1
    sys.exit(code)


def _run(args: argparse.Namespace) -> int:
    if args.command in ("install", "uninstall"):
        from pycni.cli import install

        return (install.cmd_install if args.command == "install" else install.cmd_uninstall)(args, os.environ)
    if args.command == "executor":
        from pycni.executor.command import cmd_executor

        return cmd_executor(args, os.environ)
    if args.command == "agent":
        from pycni.cli.agent import cmd_agent

        return cmd_agent(args, os.environ)
    if args.command in ("cluster", "node"):
        from pycni.cli import cluster

        return (cluster.cmd_cluster if args.command == "cluster" else cluster.cmd_node)(args, os.environ)
    if args.command in ("apply", "delete", "get", "label"):
        from pycni.cli.objects import cmd_objects

        return cmd_objects(args, os.environ)
    if args.command == "policy":
        from pycni.cli.policy import cmd_policy

        return cmd_policy(args, os.environ)
    if args.command == "doctor":
        from pycni.cli.doctor import cmd_doctor

        return cmd_doctor(args, os.environ)
    if args.command == "lab":
        from pycni.cli.lab import cmd_lab

        return cmd_lab(args, os.environ)
    from pycni.cli import cnitool

    handlers = {
        "add": cnitool.cmd_add,
        "check": cnitool.cmd_check,
        "del": cnitool.cmd_del,
        "status": cnitool.cmd_status,
        "gc": cnitool.cmd_gc,
        "version": cnitool.cmd_version,
    }
    return handlers[args.command](args, os.environ)


def _describe(exc: BaseException) -> str:
    from pycni.spec.errors import CniError

    if isinstance(exc, CniError):
        return f"{exc} (code {exc.code})"
    return str(exc) or type(exc).__name__


if __name__ == "__main__":
    main()
