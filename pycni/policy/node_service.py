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
"""

from __future__ import annotations

import os

from pycni.cluster.kv import KV
from pycni.policy.agent import PolicyAgent

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


class PolicyService:
    def __init__(self, kv: KV, node: str, *, prefix: str, socket_path: str) -> None:
        self.kv = kv
        self.node = node
        self.prefix = prefix
        self.socket_path = socket_path
        self.agent: PolicyAgent | None = None

    def start(self) -> None:
        from pycni.net.sysctl import ensure_sysctl

        check_br_netfilter()
        for key in BRIDGE_SYSCTLS:
            ensure_sysctl(key, 1)
        agent = PolicyAgent(self.kv, self.node, _apply_nft, prefix=self.prefix, socket_path=self.socket_path)
        try:
            agent.start()
        except BaseException:
            agent.stop()  # threads it started before failing; the next attempt makes a new agent
            raise
        self.agent = agent

    def stop(self) -> None:
        if self.agent is not None:
            self.agent.stop()
            self.agent = None
