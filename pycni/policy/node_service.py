"""The policy agent as a service of the node agent (``pycni agent --policy on``, the default).

Why here: cluster/ sits above policy/ in docs/DESIGN.md's layers and must
not import it, so ``pycni agent`` (cli/) composes the two, handing
``run_agent`` this service through its ``services`` hook.

Contract:

- ``check_br_netfilter()`` raises ``PolicyUnavailable`` (one line) when
  /proc/sys/net/bridge is missing: without br_netfilter, traffic between two
  pods on one bridge never reaches the ``inet`` forward hook, so same-node
  policy could not be enforced. ``pycni agent`` checks it before starting.
- ``PolicyService(kv, node, prefix=, socket_path=)``: ``start()`` sets
  ``net.bridge.bridge-nf-call-iptables=1`` and ``...-ip6tables=1`` in the
  agent's own network namespace, then starts a ``PolicyAgent`` that applies
  nft scripts there (``pycni.net.firewall.nft.apply``) and serves the
  ``netpol`` plugin on ``socket_path``; it raises (and may be retried) when
  etcd or nftables are not there yet. ``stop()`` stops the agent and removes
  its socket; the table stays in the kernel, so a restarted agent changes
  nothing for running pods.
- With ``metrics``, the policy series (``pycni.policy.metrics``) are served
  with the node agent's; with ``run_dir``, denied connections are written to
  ``<run_dir>/policy-denied.log`` (``pycni policy log``). The log is best
  effort: when NFLOG group 2 is taken, enforcement goes on without it.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from pycni.cluster.kv import KV
from pycni.policy.agent import PolicyAgent
from pycni.policy.ruleset import FAMILY, TABLE

if TYPE_CHECKING:
    from pycni.cluster.agent_metrics import AgentMetrics
    from pycni.policy.denylog import DenyLog
    from pycni.policy.metrics import PolicyMetrics
    from pycni.policy.nftdiff import ElementChange

log = logging.getLogger("pycni.policy")

__all__ = ["BRIDGE_SYSCTLS", "PolicyService", "PolicyUnavailable", "check_br_netfilter"]

BRIDGE_SYSCTLS = ("net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables")
_BRIDGE_PROC = "/proc/sys/net/bridge"


class PolicyUnavailable(Exception):
    """This node cannot enforce NetworkPolicy; the message says why and what to do."""


def check_br_netfilter() -> None:
    if not os.path.isdir(_BRIDGE_PROC):
        raise PolicyUnavailable(f"NetworkPolicy needs the br_netfilter module ({_BRIDGE_PROC} is missing): "
                                "run 'modprobe br_netfilter', or start the agent with --policy off")


def _apply_nft(script: str) -> None:
    from pycni.net.firewall.nft import apply

    apply(script)


def apply_elements(changes: list[ElementChange]) -> None:
    """Plain sets' element changes in one nfnetlink batch (``Enforcer``; no libnftables cache to build)."""
    from pycni.net.firewall import nft_sets

    deletes, adds = [], []
    for s, gone, came in changes:
        view = nft_sets.set_view(s.name, s.type)
        deletes += [(view, nft_sets.SetElement(tuple(e.split(" . ")))) for e in sorted(gone)]
        adds += [(view, nft_sets.SetElement(tuple(e.split(" . ")))) for e in sorted(came)]
    nft_sets.change_elements(FAMILY, TABLE, deletes, adds)


class PolicyService:
    def __init__(self, kv: KV, node: str, *, prefix: str, socket_path: str, metrics: AgentMetrics | None = None,
                 run_dir: str | None = None) -> None:
        self.kv = kv
        self.node = node
        self.prefix = prefix
        self.socket_path = socket_path
        self.metrics = metrics
        self.run_dir = run_dir
        self.agent: PolicyAgent | None = None
        self.deny_log: DenyLog | None = None
        self._metrics: PolicyMetrics | None = None  # the current agent's; served through one collector

    def start(self) -> None:
        from pycni.net.sysctl import ensure_sysctl

        check_br_netfilter()
        for key in BRIDGE_SYSCTLS:
            ensure_sysctl(key, 1)
        agent = PolicyAgent(self.kv, self.node, _apply_nft, prefix=self.prefix, socket_path=self.socket_path,
                            apply_elements=apply_elements)
        if self.metrics is not None:
            from pycni.policy.metrics import PolicyMetrics

            if self._metrics is None:  # the first attempt registers; a retry's agent takes its place
                self.metrics.add_collector(lambda: self._metrics.render() if self._metrics else "")
            self._metrics = PolicyMetrics(agent)  # before start, so the first sync is observed too
        try:
            agent.start()
        except BaseException:
            agent.stop()  # threads it started before failing; the next attempt makes a new agent
            raise
        self.agent = agent
        if self.run_dir is not None:
            from pycni.policy.denylog import start_log

            try:
                self.deny_log = start_log(agent, self.run_dir)
            except Exception as exc:
                log.warning("policy: no deny log (%s); enforcement goes on without it", exc)

    def stop(self) -> None:
        if self.deny_log is not None:
            self.deny_log.stop()
            self.deny_log = None
        if self.agent is not None:
            self.agent.stop()
            self.agent = None
