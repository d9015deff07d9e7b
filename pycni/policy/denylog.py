"""Denied connections as JSON lines: NFLOG packets of the per-pod drop, named with pods and policies.

Every isolated pod's chain ends with a rate-limited ``log prefix "pycni D I
x/b " group 2`` before its counted drop (``pycni.policy.compile``), so the
kernel sends the first packets of each denied connection (at most 10/s,
burst 20, per pod and direction) to NFLOG group 2.

Contract:

- ``parse_prefix(prefix)`` reads that prefix: (direction, pod) or None;
  ``parse_tier_prefix`` reads an admin tier's (``pycni T I anp:ops``).
- ``context_of(node, chains, pods, policy_keys)`` is what naming needs,
  built from the agent's state and its committed ruleset: which pod has
  which address (every pod of the cluster with an endpoint), and for each
  local pod and direction the policies that isolate it, read from its
  compiled chain (its jumps to policy chains; the drop's comment when a
  policy is unknown).
- ``denied_record(packet, context, now)`` turns one logged packet into the
  JSON object written: ``time`` (UTC, ms), ``node``, ``direction``
  (ingress|egress), ``pod`` (whose policy denied), ``srcIP``, ``srcPod``,
  ``srcPort``, ``dstIP``, ``dstPod``, ``port``, ``protocol``,
  ``isolatedBy``; pods are ``namespace/name`` or null. Pure.
- ``DenyLogWriter(path, max_bytes)`` appends lines to
  ``<run-dir>/policy-denied.log``; past ``max_bytes`` the file becomes
  ``policy-denied.log.1`` (one generation kept) and a new one starts.
- ``start_log(agent, run_dir)`` subscribes to group 2 in the calling
  thread's network namespace (the agent's, where its table is) and runs a
  daemon thread that writes a line per logged packet until ``stop()``. It
  reads the agent's state only when a packet comes after a sync changed it,
  never on the agent's hot path.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, Protocol

from pycni.policy.compile import LOG_GROUP, pod_chain_name, policy_chain_name
from pycni.policy.model import Direction, Pod

if TYPE_CHECKING:
    from pycni.net.firewall.nflog import LoggedPacket, NflogSocket
    from pycni.policy.agent import PolicyAgent
    from pycni.policy.enforcer import SyncStats

__all__ = ["LOG_NAME", "DenyContext", "DenyLog", "DenyLogWriter", "context_of", "denied_record", "parse_prefix",
           "parse_tier_prefix", "start_log"]

log = logging.getLogger("pycni.policy")
LOG_NAME = "policy-denied.log"
MAX_BYTES = 8 << 20
_DIRECTIONS: dict[str, Direction] = {"I": "Ingress", "E": "Egress"}


class ChainLike(Protocol):
    """A compiled chain (``compile.Chain``): its rules as nft text."""

    @property
    def rules(self) -> tuple[str, ...]: ...


def parse_prefix(prefix: str) -> tuple[Direction, str] | None:
    """``pycni D I x/b `` -> ("Ingress", "x/b"); None for any other prefix."""
    parts = prefix.split()
    if len(parts) != 4 or parts[:2] != ["pycni", "D"] or parts[2] not in _DIRECTIONS or "/" not in parts[3]:
        return None
    return _DIRECTIONS[parts[2]], parts[3]


@dataclass(frozen=True)
class DenyContext:
    node: str = ""
    pods_by_ip: Mapping[str, str] = field(default_factory=dict)
    isolating: Mapping[tuple[str, Direction], tuple[str, ...]] = field(default_factory=dict)


def _isolating_from_chain(chain: ChainLike, by_chain: Mapping[str, str]) -> tuple[str, ...]:
    found: list[str] = []
    for rule in chain.rules:
        if rule.startswith("jump ") or rule.startswith("goto "):
            target = rule.split()[1]
            if target.startswith(("anpt_", "banp_")):
                continue  # the admin tiers: their denies log under their own prefix
            if target in by_chain:
                found.append(by_chain[target])
            else:
                return _isolating_from_comment(chain)
    return tuple(found) if found else _isolating_from_comment(chain)


def _isolating_from_comment(chain: ChainLike) -> tuple[str, ...]:
    # 'counter drop comment "x/b isolated for ingress by x/a, x/b"' (possibly cut at 128 bytes)
    for rule in chain.rules:
        if " drop comment " in rule and " by " in rule:
            listed = rule.split(" by ", 1)[1].rstrip('"')
            return tuple(key.strip() for key in listed.split(",") if key.strip())
    return ()


def context_of(node: str, chains: Mapping[str, ChainLike] | None, pods: Iterable[Pod],
               policy_keys: Iterable[str]) -> DenyContext:
    pods = list(pods)
    by_chain = {
        policy_chain_name(key, direction): key for key in policy_keys for direction in _DIRECTIONS.values()
    }
    isolating: dict[tuple[str, Direction], tuple[str, ...]] = {}
    for pod in pods:
        if pod.node != node:
            continue
        for direction in _DIRECTIONS.values():
            chain = (chains or {}).get(pod_chain_name(pod.key, direction))
            if chain is not None:
                isolating[(pod.key, direction)] = _isolating_from_chain(chain, by_chain)
    pods_by_ip = {ip: pod.key for pod in pods if not pod.host_network for ip in pod.ips}
    return DenyContext(node, pods_by_ip, isolating)


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_tier_prefix(prefix: str) -> tuple[Direction, str] | None:
    """``pycni T I anp:ops `` (an admin tier's Deny) -> ("Ingress", "anp:ops"); None for any other prefix."""
    parts = prefix.split()
    if len(parts) != 4 or parts[:2] != ["pycni", "T"] or parts[2] not in _DIRECTIONS:
        return None
    return _DIRECTIONS[parts[2]], parts[3]


def denied_record(packet: LoggedPacket, context: DenyContext, now: float) -> dict[str, Any] | None:
    """The JSON object for one logged packet; None when it is not one of pycni's deny logs.

    An admin tier's Deny (``pycni T ...``) names its policy in ``deniedBy``; its
    pod is the packet's local end (the destination for ingress, the source for egress)."""
    denied_by = None
    parsed = parse_prefix(packet.prefix)
    if parsed is None:
        tier = parse_tier_prefix(packet.prefix)
        if tier is None:
            return None
        direction, denied_by = tier
        local_ip = packet.dst if direction == "Ingress" else packet.src
        parsed = (direction, context.pods_by_ip.get(local_ip) or "")
    direction, pod = parsed
    record = {
        "time": _utc(packet.timestamp if packet.timestamp is not None else now),
        "node": context.node,
        "direction": direction.lower(),
        "pod": pod,
        "srcIP": packet.src,
        "srcPod": context.pods_by_ip.get(packet.src),
        "srcPort": packet.sport,
        "dstIP": packet.dst,
        "dstPod": context.pods_by_ip.get(packet.dst),
        "port": packet.dport,
        "protocol": packet.protocol,
        "isolatedBy": list(context.isolating.get((pod, direction), ())),
    }
    if denied_by is not None:
        record["deniedBy"] = denied_by
    return record


class DenyLogWriter:
    """Append-only JSON lines with one rotated generation (``.1``)."""

    def __init__(self, path: str, max_bytes: int = MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self._file: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 (kept open)

    def write(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(record, separators=(", ", ": ")) + "\n"
        if self._file.tell() and self._file.tell() + len(line) > self.max_bytes:
            self._file.close()
            os.replace(self.path, self.path + ".1")
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        self._file.write(line)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class DenyLog:
    """The agent-side listener: NFLOG group 2 -> ``<run-dir>/policy-denied.log``."""

    def __init__(self, agent: PolicyAgent, run_dir: str, *, group: int = LOG_GROUP,
                 subscribe: Callable[[int], NflogSocket] | None = None, clock: Callable[[], float] = time.time,
                 max_bytes: int = MAX_BYTES) -> None:
        if subscribe is None:
            from pycni.net.firewall.nflog import subscribe as nflog_subscribe

            subscribe = nflog_subscribe
        self.agent = agent
        self.clock = clock
        self.written = 0
        self.writer = DenyLogWriter(os.path.join(run_dir, LOG_NAME), max_bytes)
        self._socket = subscribe(group)  # in the caller's netns: the agent's
        self._stale = threading.Event()
        self._stale.set()
        self._stop = threading.Event()
        self._context = DenyContext(agent.node)
        agent.on_sync.append(self._on_sync)
        self._thread = threading.Thread(target=self._run, name="pycni-policy-denylog", daemon=True)
        self._thread.start()

    def _on_sync(self, _stats: SyncStats, _seconds: float, _waited: float | None) -> None:
        self._stale.set()  # the agent's hot path pays only this

    def _refresh(self) -> None:
        agent = self.agent
        with agent._lock:  # a consistent copy; the names are built outside the lock
            self._stale.clear()
            committed = agent.enforcer.committed
            pods = agent.state.pods()  # kept merged by the state: a copy of the list, no recomputation
            policy_keys = list(agent.state.policies)
        self._context = context_of(agent.node, committed.chains if committed is not None else None, pods,
                                   policy_keys)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                packets = self._socket.receive(0.5)
                if packets and self._stale.is_set():
                    self._refresh()
                for packet in packets:
                    record = denied_record(packet, self._context, self.clock())
                    if record is not None:
                        self.writer.write(record)
                        self.written += 1
            except Exception as exc:  # keep listening: a bad packet or a full disk must not end the log
                log.warning("policy: deny log: %s", exc)
                self._stop.wait(1.0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()
        self.writer.close()
        if self._on_sync in self.agent.on_sync:
            self.agent.on_sync.remove(self._on_sync)


def start_log(agent: PolicyAgent, run_dir: str) -> DenyLog:
    """Write the node's denied connections to ``<run_dir>/policy-denied.log`` until ``stop()``.

    Call it in the agent's network namespace (NFLOG is per namespace). Raises
    ``pycni.net.firewall.nflog.NflogError`` when the group cannot be had (another
    listener holds it): enforcement does not depend on the log, so a caller may
    go on without it."""
    return DenyLog(agent, run_dir)
