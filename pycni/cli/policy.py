"""``pycni policy explain|log``: why a connection passes or not, and which connections were denied.

- ``explain --from NS/POD|IP --to NS/POD|IP --port 80/TCP [-o text|json]``
  reads the cluster once (objects, endpoints, the nodes' leases: see
  ``pycni.policy.snapshot``), judges the connection with the evaluator and
  prints ``pycni.policy.explain``'s text, then which node's agent enforces
  each direction (egress at the source's node, ingress at the destination's).
  ``-o json`` prints the same facts as one JSON object. A port may be a
  name, resolved on the destination pod (``http/TCP``). An unknown pod, or a
  pod with no endpoint yet, is a one-line error and exit 1. With no etcd
  named (flag or ``$PYCNI_ETCD_ENDPOINTS``) it asks the lab's etcd when a lab
  is up, as ``pycni apply`` and ``get`` do.
- ``log [-f] [--node-run-dir DIR | --node NAME]`` prints the denied
  connections the node's agent wrote to ``<run-dir>/policy-denied.log``
  (JSON lines, see ``pycni.policy.denylog``), the rotated file first; ``-f``
  keeps following the file across rotations until interrupted. ``--node``
  names a node of the lab that is up (its agent's run dir).

``cmd_policy`` takes ``kv=`` and ``out=`` so tests drive it with ``MemoryKV``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

from pycni.cli.cluster import add_etcd_arguments
from pycni.rundir import DEFAULT_RUN_DIR

if TYPE_CHECKING:
    from pycni.cluster.kv import KV
    from pycni.policy.evaluate import DirectionVerdict, Party, Snapshot, Verdict
    from pycni.policy.model import Protocol
    from pycni.policy.snapshot import ClusterObjects

__all__ = ["add_arguments", "cmd_policy", "follow", "parse_port", "verdict_json"]

PROTOCOLS = ("TCP", "UDP", "SCTP")


class PolicyCliError(Exception):
    """A one-line refusal (printed as ``pycni policy: ...``)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="policy_command", metavar="SUBCOMMAND")
    sub.required = True
    explain = sub.add_parser(
        "explain", help="judge one new connection and say why (isolating policies, allowing rule, nearest misses)",
        description="Evaluate a new connection against the NetworkPolicies, pods and nodes stored in etcd. "
        "An end is a pod (NAMESPACE/NAME) or an address: a node's address is a node, a pod's is that pod.")
    explain.add_argument("--from", dest="src", required=True, metavar="NS/POD|IP", help="the connecting end")
    explain.add_argument("--to", dest="dst", required=True, metavar="NS/POD|IP", help="the listening end")
    explain.add_argument("--port", required=True, metavar="PORT[/PROTO]",
                         help="destination port and protocol, e.g. 80/TCP, 53/UDP, http/TCP (default protocol TCP)")
    explain.add_argument("-o", "--output", choices=("text", "json"), default="text")
    add_etcd_arguments(explain)
    log = sub.add_parser("log", help="denied connections on this node, as JSON lines",
                         description="Print what the node's policy agent logged in <run-dir>/policy-denied.log: "
                         "one JSON object per denied connection (kernel rate-limited to 10/s per pod and direction).")
    log.add_argument("-f", "--follow", action="store_true", help="keep printing new lines as they come")
    where = log.add_mutually_exclusive_group()
    where.add_argument("--node-run-dir", metavar="DIR", help=f"the agent's --run-dir (default {DEFAULT_RUN_DIR})")
    where.add_argument("--node", metavar="NAME", help="a node of the lab that is up ($PYCNI_LAB chooses among several)")


def cmd_policy(args: argparse.Namespace, environ: Mapping[str, str], *, kv: KV | None = None,
               out: IO[str] | None = None, err: IO[str] | None = None,
               stop: threading.Event | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    try:
        if args.policy_command == "log":
            return _log(args, _run_dir(args, environ), out, stop or threading.Event())
        return _explain(args, environ, kv, out)
    except PolicyCliError as exc:
        print(f"pycni policy: {exc}", file=err)
        return 1


# -- explain ------------------------------------------------------------------------------


def parse_port(text: str) -> tuple[int | str, Protocol]:
    """``80/TCP`` -> (80, "TCP"); the protocol is case-insensitive and defaults to TCP; a name stays a str."""
    port_text, _, proto_text = text.partition("/")
    protocol = (proto_text or "TCP").upper()
    if protocol not in PROTOCOLS:
        raise PolicyCliError(f"--port: unknown protocol {proto_text!r} (TCP, UDP or SCTP)")
    if port_text.isdigit():
        port = int(port_text)
        if not 1 <= port <= 65535:
            raise PolicyCliError(f"--port: {port} is not between 1 and 65535")
        return port, protocol  # type: ignore[return-value]
    if not port_text:
        raise PolicyCliError("--port: missing port (e.g. 80/TCP)")
    return port_text, protocol  # type: ignore[return-value]


def _explain(args: argparse.Namespace, environ: Mapping[str, str], kv: KV | None, out: IO[str]) -> int:
    from pycni.policy.evaluate import evaluate, named_port_number
    from pycni.policy.explain import explain
    from pycni.policy.snapshot import read

    port, protocol = parse_port(args.port)
    if kv is None and not args.etcd_endpoints and not environ.get("PYCNI_ETCD_ENDPOINTS"):
        from pycni.cli.objects import UsageError, lab_etcd_of

        try:
            lab = lab_etcd_of(environ)  # no etcd named: a lab's, if one is up, as apply and get do
        except UsageError as exc:
            raise PolicyCliError(str(exc)) from None
        if lab is not None:
            from pycni.net.netns import run_in_netns

            args.etcd_endpoints = lab.endpoint
            return run_in_netns(lab.netns, _explain, args, environ, None, out)
    opened: KV | None = None
    if kv is None:
        from pycni.cli.cluster import connect

        kv = opened = connect(args, environ)
    try:
        objects = read(kv, args.etcd_prefix)
    finally:
        if opened is not None:
            opened.close()
    snapshot = objects.snapshot()
    for end in (args.src, args.dst):
        _check_end(objects, snapshot, end)
    if isinstance(port, str):
        dst_pod = snapshot.pod(args.dst) if "/" in args.dst else None
        number = named_port_number(dst_pod, port, protocol)
        if number is None:
            where = args.dst if dst_pod is not None else "the destination (not a pod)"
            raise PolicyCliError(f"--port: {where} has no {protocol} port named {port!r}")
        port = number
    try:
        verdict = evaluate(snapshot, args.src, args.dst, port, protocol)
    except ValueError as exc:
        raise PolicyCliError(str(exc)) from None
    if args.output == "json":
        print(json.dumps(verdict_json(verdict), indent=2, sort_keys=True), file=out)
    else:
        print(explain(verdict), file=out)
        print(enforcement_text(verdict), file=out)
    return 0


def _check_end(objects: ClusterObjects, snapshot: Snapshot, end: str) -> None:
    if "/" not in end:
        import ipaddress

        try:
            ipaddress.ip_address(end)
        except ValueError:
            raise PolicyCliError(f"{end!r} is neither an IP address nor NAMESPACE/POD") from None
        return
    if snapshot.pod(end) is not None:
        return
    if end in objects.pod_objects:
        raise PolicyCliError(f"pod {end} has no endpoint yet (not attached to any node): it has no address")
    raise PolicyCliError(f"pod {end} not found: no Pod object and no endpoint of that name")


def enforcement_text(verdict: Verdict) -> str:
    """Which node's agent enforces each direction: egress at the source's node, ingress at the destination's."""
    parts = [
        f"{judged.direction.lower()} of {judged.party.name} on node {judged.party.node or '?'}"
        for judged in (verdict.egress, verdict.ingress) if _enforced(judged)
    ]
    return "enforced by: " + (", ".join(parts) if parts else "no node (nothing here is checked)")


def _enforced(judged: DirectionVerdict) -> bool:
    return judged.party.pod is not None and judged.status not in ("not-a-pod", "own-node")


def _party_json(party: Party) -> dict[str, Any]:
    return {"kind": party.kind, "name": party.name, "ip": party.ip, "node": party.node or None,
            "labels": dict(party.pod.labels) if party.pod is not None else None}


def _direction_json(verdict: DirectionVerdict, port: int, protocol: Protocol) -> dict[str, Any]:
    from pycni.policy.compile import pod_chain_name, policy_chain_name
    from pycni.policy.explain import match_text, miss_text

    isolated = verdict.status in ("allowed", "denied") and verdict.party.pod is not None
    return {
        "allowed": verdict.allowed,
        "status": verdict.status,
        "enforcedOn": verdict.party.node if _enforced(verdict) else None,
        # where to look on that node: nft list chain inet pycni_policy <chain>
        "nftChain": pod_chain_name(verdict.party.name, verdict.direction) if isolated else None,
        "isolatedBy": list(verdict.isolated_by),
        "allowedBy": [{"policy": m.policy, "rule": m.rule, "peer": m.peer, "port": m.port, "text": match_text(m),
                       "nftChain": policy_chain_name(m.policy, m.direction)} for m in verdict.allowed_by],
        "nearestMisses": [{"policy": m.policy, "rule": m.rule_index, "missed": m.kind,
                           "text": miss_text(m, port, protocol)} for m in verdict.misses],
        "emptyPolicies": list(verdict.empty_policies),
        # the admin tiers: the AdminNetworkPolicy or baseline rule that decided, an ANP Pass that handed over
        "decidedBy": _tier_json(verdict.tier),
        "passedBy": _tier_json(verdict.passed),
    }


def _tier_json(match: Any) -> dict[str, Any] | None:
    if match is None:
        return None
    return {"policy": match.policy, "rule": match.rule, "name": match.rule_name, "action": match.action,
            "priority": match.priority, "text": str(match)}


def verdict_json(verdict: Verdict) -> dict[str, Any]:
    """The verdict's facts as ``explain -o json`` prints them."""
    return {
        "from": _party_json(verdict.src),
        "to": _party_json(verdict.dst),
        "port": verdict.port,
        "protocol": verdict.protocol,
        "allowed": verdict.allowed,
        "egress": _direction_json(verdict.egress, verdict.port, verdict.protocol),
        "ingress": _direction_json(verdict.ingress, verdict.port, verdict.protocol),
    }


# -- log ------------------------------------------------------------------------------------


def _run_dir(args: argparse.Namespace, environ: Mapping[str, str]) -> str:
    """``--node-run-dir``, a lab node's run dir for ``--node``, else the agent's default."""
    if not args.node:
        return str(args.node_run_dir or DEFAULT_RUN_DIR)
    from pycni.cluster.lab_state import DEFAULT_ROOT, LabState

    root = environ.get("PYCNI_LAB_ROOT") or DEFAULT_ROOT
    ids = [environ["PYCNI_LAB"]] if environ.get("PYCNI_LAB") else LabState.list_ids(root)
    if len(ids) != 1:
        raise PolicyCliError(f"--node: {'several labs are up: set $PYCNI_LAB' if ids else 'no lab is up'}")
    try:
        state = LabState.load(root, ids[0])
    except FileNotFoundError:
        raise PolicyCliError(f"--node: no lab '{ids[0]}' under {root}") from None
    if args.node not in state.nodes:
        raise PolicyCliError(f"--node: lab {state.id} has no node {args.node!r} ({', '.join(sorted(state.nodes))})")
    return os.path.join(state.node_dir(args.node), "run")


def _log(args: argparse.Namespace, run_dir: str, out: IO[str], stop: threading.Event) -> int:
    from pycni.policy.denylog import LOG_NAME

    path = os.path.join(run_dir, LOG_NAME)
    if not args.follow:
        found = False
        for name in (path + ".1", path):
            try:
                with open(name, encoding="utf-8", errors="replace") as f:
                    out.write(f.read())
                    found = True
            except FileNotFoundError:
                continue
        out.flush()
        if not found:
            raise PolicyCliError(f"no denied-connection log at {path} (is the policy agent running there?)")
        return 0
    follow(path, out, stop)
    return 0


def follow(path: str, out: IO[str], stop: threading.Event, poll: float = 0.2) -> None:
    """``tail -F``: print the file from its start, then every new line; reopen it when it is rotated or
    replaced, and wait for it when it does not exist yet. Returns when ``stop`` is set."""
    f: IO[str] | None = None
    inode = None
    pending = ""
    try:
        while not stop.is_set():
            if f is None:
                try:
                    f = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115 (kept open while following)
                    inode = os.fstat(f.fileno()).st_ino
                except FileNotFoundError:
                    stop.wait(poll)
                    continue
            chunk = f.read()
            if chunk:
                pending += chunk
                lines = pending.split("\n")
                pending = lines.pop()
                for line in lines:
                    out.write(line + "\n")
                out.flush()
                continue
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None
            if current is None or current.st_ino != inode or current.st_size < f.tell():
                # rotated, replaced or truncated: finish the old file, then open the new one
                rest = pending + f.read()
                if rest:
                    out.write(rest if rest.endswith("\n") else rest + "\n")
                    out.flush()
                f.close()
                f, pending = None, ""
                continue
            stop.wait(poll)
    finally:
        if f is not None:
            f.close()
