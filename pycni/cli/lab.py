"""``pycni lab``: a multi-node cluster on this machine (see pycni.cluster.lab).

    pycni lab up --nodes 3 --backend vxlan
    pycni lab pod add n1 web
    pycni lab pod add n2 a --namespace x --labels pod=a,app=web --port http=80/TCP
    pycni lab exec web -- ping -c1 10.244.2.2
    pycni lab up --backend bgp; pycni lab exec tor -- birdc show route
    pycni lab status
    pycni lab break n1 ip-forward; pycni lab doctor n1; pycni lab heal n1   (pycni.cli.lab_faults)
    pycni lab down
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pycni.cli.lab_faults import add_fault_commands

if TYPE_CHECKING:
    from pycni.cluster.kv import KV
    from pycni.cluster.lab import Lab

__all__ = ["add_arguments", "cmd_lab"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lab", default=os.environ.get("PYCNI_LAB"),
                   help="lab id (default: $PYCNI_LAB, or the only lab that is up)")
    p.add_argument("--root", default=None, help="where labs keep their state (default /run/pycni-lab)")
    sub = p.add_subparsers(dest="lab_command", metavar="LAB_COMMAND")
    sub.required = True
    up = sub.add_parser("up", help="build a lab: underlay, etcd, one namespace and agent per node")
    up.add_argument("--nodes", type=int, default=3, help="how many nodes (default 3)")
    up.add_argument("--backend", choices=("vxlan", "host-gw", "bgp", "wireguard"), default="vxlan",
                    help="bgp: bird2 on every node and a top-of-rack bird in the underlay router ('tor')")
    up.add_argument("--bgp-route-reflectors", default="", metavar="NODE,...",
                    help="bgp: these nodes reflect routes instead of a full mesh (e.g. n1)")
    up.add_argument("--network", default="10.244.0.0/16", help="cluster pod network (default 10.244.0.0/16)")
    up.add_argument("--id", help="lab id (default: pl + 6 random hex digits)")
    up.add_argument("--ipv6", action="store_true", help="dual stack: IPv6 underlay addresses and pod network "
                    "fd00:10:244::/56 (vxlan and host-gw)")
    up.add_argument("--ipv6-only", action="store_true", help="IPv6-only: nodes and pods get only IPv6 addresses, "
                    "pod network fd00:10:244::/56 (vxlan and host-gw)")
    sub.add_parser("down", help="stop and remove everything the lab made")
    sub.add_parser("status", help="nodes, subnets, pods and their addresses")
    node = sub.add_parser("node", help="add or remove nodes").add_subparsers(dest="node_command", required=True)
    node.add_parser("add", help="add a node").add_argument("name", nargs="?")
    node.add_parser("del", help="remove a node and its pods").add_argument("name")
    pod = sub.add_parser("pod", help="add or remove pods").add_subparsers(dest="pod_command", required=True)
    pod_add = pod.add_parser("add", help="store the Pod object and attach a pod on a node",
                             description="Applies the Namespace (if missing) and the Pod object to the lab's "
                             "etcd, then attaches the pod with the CNI_ARGS kubelet's runtimes pass "
                             "(K8S_POD_NAMESPACE, K8S_POD_NAME, K8S_POD_INFRA_CONTAINER_ID). A pod outside "
                             "'default' is NS/NAME to the other lab commands.")
    pod_add.add_argument("node")
    pod_add.add_argument("name")
    pod_add.add_argument("-n", "--namespace", default="default", help="Kubernetes namespace (default: default)")
    pod_add.add_argument("--labels", default="", metavar="K=V,...", help="the Pod's labels")
    pod_add.add_argument("--port", action="append", default=[], metavar="NAME=PORT/PROTO",
                         help="a containerPort (protocol TCP, UDP or SCTP; default TCP); repeatable")
    pod.add_parser("del", help="remove a pod (NAME, or NS/NAME)").add_argument("name")
    ex = sub.add_parser("exec", help="run a command in a pod, node, 'outside', 'underlay' or (bgp) 'tor' namespace")
    ex.add_argument("name")
    ex.add_argument("cmd", nargs=argparse.REMAINDER, help="the command, after --")
    add_fault_commands(sub)  # faults, break, heal, doctor


def parse_labels(text: str) -> dict[str, str]:
    """``k=v,k2=v2`` -> a dict (validated with the Pod, as the API server would)."""
    labels: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--labels: {item!r} is not KEY=VALUE")
        labels[key] = value
    return labels


def parse_port(spec: str) -> dict[str, Any]:
    """``NAME=PORT[/PROTO]`` (or ``PORT[/PROTO]``) -> a containerPort."""
    name, _, rest = spec.rpartition("=")
    number, _, protocol = rest.partition("/")
    if not number.isdigit():
        raise ValueError(f"--port: {spec!r} is not NAME=PORT/PROTO")
    port: dict[str, Any] = {"containerPort": int(number), "protocol": (protocol or "TCP").upper()}
    if name:
        port["name"] = name
    return port


def apply_pod_objects(lab: Lab, namespace: str, name: str, labels: dict[str, str],
                      ports: list[dict[str, Any]]) -> None:
    """Store the pod's Namespace (when missing) and its Pod object in the lab's etcd, validated first."""
    from pycni.cluster.lab import PREFIX
    from pycni.policy.store import NAMESPACE, NotFound, ObjectStore
    from pycni.policy.validate import validate_all

    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace, "labels": labels},
           "spec": {"containers": [{"name": "main", "image": "pycni-lab", "ports": ports}]}}

    def store(kv: KV) -> None:
        objects = ObjectStore(kv, PREFIX)
        documents = [pod]
        try:
            objects.get(NAMESPACE, "", namespace)
        except NotFound:
            documents.insert(0, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        objects.apply(validate_all(documents))

    lab.with_kv(store)


def delete_pod_object(lab: Lab, namespace: str, name: str) -> None:
    from pycni.cluster.lab import PREFIX
    from pycni.policy.store import POD, NotFound, ObjectStore

    def delete(kv: KV) -> None:
        with contextlib.suppress(NotFound):
            ObjectStore(kv, PREFIX).delete(POD, namespace, name)

    lab.with_kv(delete)


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=False)]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)).rstrip()
                     for row in [header, *rows])


def cmd_lab(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from ipaddress import IPv4Network

    from pycni.cli.lab_faults import COMMANDS as FAULT_COMMANDS
    from pycni.cli.lab_faults import cmd_fault
    from pycni.cluster.lab import Lab, LabError, find_lab
    from pycni.cluster.lab_state import DEFAULT_ROOT
    from pycni.policy.store import StoreError
    from pycni.policy.validate import ValidationError

    root = args.root or environ.get("PYCNI_LAB_ROOT") or DEFAULT_ROOT
    try:
        if args.lab_command == "up":
            reflectors = [n.strip() for n in args.bgp_route_reflectors.split(",") if n.strip()]
            lab = Lab.up(args.nodes, args.backend, root=root, lab_id=args.id, network=IPv4Network(args.network),
                         route_reflectors=reflectors, ipv6=args.ipv6, ipv6_only=args.ipv6_only)
            print(f"lab {lab.state.id} is up ({args.backend}, {args.nodes} nodes); state in {lab.state.dir}")
            _print_status(lab)
            return 0
        lab = find_lab(root, args.lab)
        if args.lab_command == "down":
            for line in lab.down():
                print(f"removed {line}")
            print(f"lab {lab.state.id} is down")
        elif args.lab_command == "status":
            _print_status(lab)
        elif args.lab_command == "node":
            if args.node_command == "add":
                node = lab.add_node(args.name)
                print(f"node {node.name} joined: {lab.node_subnet(node.name)} at {node.ip}")
            else:
                lab.remove_node(args.name)
                print(f"node {args.name} removed")
        elif args.lab_command == "pod":
            if args.pod_command == "add":
                apply_pod_objects(lab, args.namespace, args.name, parse_labels(args.labels),
                                  [parse_port(spec) for spec in args.port])
                pod = lab.add_pod(args.node, args.name, namespace=args.namespace)
                print(f"pod {pod.name} on {pod.node}: {pod.ip}{' ' + pod.ipv6 if pod.ipv6 not in ('', pod.ip) else ''}")
            else:
                namespace = lab.state.pods[args.name].namespace if args.name in lab.state.pods else None
                lab.del_pod(args.name)
                if namespace is not None:  # the Pod object goes with its pod, as when kubelet's pod is deleted
                    delete_pod_object(lab, namespace, args.name.rsplit("/", 1)[-1])
                print(f"pod {args.name} removed")
        elif args.lab_command in FAULT_COMMANDS:
            return cmd_fault(lab, args)
        elif args.lab_command == "exec":
            cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
            if not cmd:
                raise LabError("exec: no command given (pycni lab exec NAME -- CMD ...)")
            import subprocess

            return subprocess.call(lab.exec_argv(args.name, cmd))  # 'tor', and birdc aimed at that bird
    except (LabError, KeyError, ValueError) as exc:
        print(f"pycni lab: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 1
    except (ValidationError, StoreError) as exc:
        print(f"pycni lab: {exc}", file=sys.stderr)
        return 1
    return 0


def _print_status(lab: object) -> None:
    from pycni.cluster.lab import Lab

    assert isinstance(lab, Lab)
    nodes, pods = lab.status_rows()
    print(_table(["NODE", "NAMESPACE", "UNDERLAY", "SUBNET", "AGENT", "PODS"], nodes))
    if pods:
        print()
        print(_table(["POD", "NODE", "IP", "NAMESPACE"], pods))
