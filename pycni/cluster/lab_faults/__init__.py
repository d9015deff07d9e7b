"""Faults a lab can inject into one node, and their heals: ``pycni lab break`` / ``heal`` / ``doctor``.

Every fault is a ``Fault``: the name ``pycni lab break NODE FAULT`` takes,
the ``pycni doctor`` check id that must name it, one line saying what it
does, whether the node's agent would repair it within seconds (then it is
made with the agent stopped, and doctor must report ``agent-down`` first),
the backends it applies to, and the checks it may make fail as a
consequence (``synthetic-pod`` when pods cannot be created, ...). Its
``inject(target) -> undo`` makes it and returns, as JSON values, what
``heal(target, undo)`` needs to put things back exactly as they were.
Faults only touch the node's namespace, the node's directories (and, on a
bgp lab, the node's bird through its control socket: lab_faults.bgp), or the
lab's plugin directory (shared by its nodes: ``plugin-missing``,
``plugin-not-exec``, ``version-skew`` and ``executor`` reach every node);
never the host.

Contract:

- ``break_fault(lab, node, name)`` records the fault in the lab state
  (``FaultState``) before making it, stopping the agent first when the fault
  needs that; LabError for an unknown node or fault, a fault already active
  on the node, or one that does not apply to the lab's backend. When the
  injection fails half way, what it made is healed and the record dropped.
- ``heal_faults(lab, node, name=None)`` heals that fault, or every fault of
  the node (last made first); then, when no remaining fault of the node
  needs its agent stopped, starts the agent and waits until it has
  reconciled and the lab has converged. Returns the names healed.
- ``lab down`` needs nothing from here: every fault lives in the lab's
  namespaces or directories, and a namespace a fault makes (``netns-leak``)
  is recorded in the state's ``namespaces``.
- ``doctor_command(state, node, ...)`` is pure: the argv that runs
  ``pycni doctor`` in the node's namespace with that node's paths.

How each fault is made follows ../shared/notes/doctor.md (section
"Design recommendations", the "lab:" line of each item).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pycni.cluster.lab import NETWORK_NAME, PREFIX, Lab, LabError
from pycni.cluster.lab_faults import bgp, files, kernel
from pycni.cluster.lab_faults.files import STALE_SHIM, VICTIM_PLUGIN
from pycni.cluster.lab_faults.kernel import FOREIGN_ADDR
from pycni.cluster.lab_faults.target import Target, Undo, remove_files, stash_restore
from pycni.cluster.lab_state import FaultState, LabState

__all__ = ["FAULTS", "Fault", "Target", "break_fault", "doctor_command", "heal_faults"]

AGENT_READY = 60.0  # how long heal waits for a restarted agent's first reconcile (a loaded CI machine)


@dataclass(frozen=True)
class Fault:
    name: str
    check: str  # the pycni doctor check id that names it
    summary: str
    inject: Callable[[Target], Undo]
    heal: Callable[[Target, Undo], None]
    stop_agent: bool = False  # the agent repairs it within seconds: made (and left) with the agent stopped
    backends: tuple[str, ...] = ()  # the lab backends it applies to; () for every one
    consequences: tuple[str, ...] = ()  # checks that may fail too, because of this one


P0 = ("synthetic-pod",)  # a pod cannot be created: doctor's reproduction fails too
PATH = ("peer-state",)  # the overlay to the peers is cut: doctor's probe of their gateways fails too

FAULTS: dict[str, Fault] = {f.name: f for f in (
    Fault("agent-down", "agent-down", "stop the node's agent", kernel.nothing, kernel.heal_nothing,
          stop_agent=True),
    Fault("conf-missing", "conf-missing", "stop the agent and move the conf dir's files away", files.conf_missing,
          stash_restore, stop_agent=True, consequences=P0),
    Fault("conf-stray", "conf-missing", "a foreign conflist that sorts before the agent's", files.conf_stray,
          remove_files, consequences=("cidr-mismatch", "synthetic-pod")),
    Fault("plugin-missing", "plugin-missing", f"move the lab's '{VICTIM_PLUGIN}' plugin away (every node)",
          files.plugin_missing, stash_restore, consequences=P0),
    Fault("plugin-not-exec", "plugin-not-exec", f"chmod -x the lab's '{VICTIM_PLUGIN}' plugin (every node)",
          files.plugin_not_exec, files.heal_mode, consequences=P0),
    Fault("version-skew", "version-skew", f"replace '{VICTIM_PLUGIN}' with one that speaks CNI <= 0.4.0 "
          "(every node)", files.version_skew, files.heal_replaced, consequences=P0),
    Fault("datastore", "datastore", "reject the node's connections to etcd (nftables output rule)",
          kernel.datastore, kernel.heal_nft, consequences=("agent-down",)),
    Fault("cidr-mismatch", "cidr-mismatch", "stop the agent and give the conflist another /24 than the lease",
          files.cidr_mismatch, files.restore_file, stop_agent=True, consequences=P0),
    Fault("ipam-exhausted", "ipam-exhausted", "reserve every free address of the node's range for dead "
          "containers", files.ipam_exhausted, remove_files, consequences=("ipam-leak", "synthetic-pod")),
    Fault("ipam-leak", "ipam-leak", "reserve three addresses for containers that do not exist", files.ipam_leak,
          remove_files),
    Fault("cache-corrupt", "cache-corrupt", "an empty cached result, as a crash mid-write leaves it",
          files.cache_corrupt, remove_files),
    Fault("executor", "executor", f"a stale '{STALE_SHIM}' shim from an older pycni (every node)", files.executor,
          files.heal_replaced),
    Fault("bridge-stale-addr", "bridge-stale-addr", f"cni0 carries {FOREIGN_ADDR} (an earlier network's), not "
          "its gateway", kernel.bridge_stale_addr, kernel.heal_bridge_stale_addr, consequences=P0),
    Fault("netns-leak", "netns-leak", "a cni-<uuid> namespace no sandbox uses", kernel.netns_leak,
          kernel.heal_netns_leak),
    Fault("ip-forward", "ip-forward", "stop the agent and set net.ipv4.ip_forward=0 in the node",
          kernel.sysctls({"net.ipv4.ip_forward": "0"}), kernel.heal_sysctls, stop_agent=True),
    Fault("br-netfilter", "br-netfilter", "net.bridge.bridge-nf-call-iptables=0 in the node",
          kernel.sysctls({"net.bridge.bridge-nf-call-iptables": "0"}), kernel.heal_sysctls),
    Fault("rp-filter", "rp-filter", "strict rp_filter (1) on all, eth0 and the overlay device", kernel.rp_filter,
          kernel.heal_sysctls),
    Fault("forward-drop", "forward-drop", "a foreign nftables forward chain with policy drop",
          kernel.nft_table("ip", "labfault_fwd", "fw { type filter hook forward priority 0; policy drop; }"),
          kernel.heal_nft),
    Fault("iptables-mixed", "iptables-mixed", "an iptables-legacy chain hooked into FORWARD beside nftables",
          kernel.iptables_mixed, kernel.heal_iptables_mixed),
    Fault("peer-state", "peer-state", "stop the agent and delete its entry for one peer (neighbour or route; "
          "bgp: disable bird's session to it)", kernel.peer_state, kernel.heal_peer_state, stop_agent=True,
          backends=("vxlan", "host-gw", "bgp"), consequences=("bgp-session",)),
    Fault("bird", "bird", "stop the agent and kill the node's bird (its routes stay: persist)", bgp.kill_bird,
          kernel.heal_nothing, stop_agent=True, backends=("bgp",)),
    Fault("vtep-mac", "vtep-mac", "stop the agent and change the VXLAN device's MAC", kernel.vtep_mac,
          kernel.heal_vtep_mac, stop_agent=True, backends=("vxlan",),
          consequences=("peer-state",)),  # a new MAC flushes the device's neighbours; peers' FDB misses it
    Fault("policy", "policy", "delete the NetworkPolicy table under the running agent (nft flush ruleset)",
          kernel.policy, kernel.heal_policy, consequences=P0),
    Fault("cidr-overlap", "cidr-overlap", "a LAN on the node (a bridge lan0) numbered inside the pod network",
          kernel.cidr_overlap, kernel.heal_cidr_overlap),
    Fault("node-ip", "node-ip", "move eth0 to another address under the running agent", kernel.node_ip,
          kernel.heal_node_ip, consequences=(*PATH, "bird", "bgp-session")),  # bgp: bird busy, sessions reset
    # The agent's one TCP connection to etcd (gRPC: watch and lease keep-alives share it) stalls once etcd
    # sends a full-size segment that eth0 now drops; its lease can expire and peers drop its routes.
    Fault("mtu", "mtu", "lower eth0's MTU by 100 on this node only", kernel.mtu, kernel.heal_mtu,
          consequences=("agent-down", *PATH)),
    Fault("vxlan-port", "vxlan-port", "drop the overlay's UDP port 8472 on input", kernel.nft_table(
        "inet", "labfault_vxlan", "in { type filter hook input priority -10; }", "udp dport 8472 drop"),
          kernel.heal_nft, backends=("vxlan",), consequences=PATH),
)}


# -- break / heal ---------------------------------------------------------------------------------------------


def _active(state: LabState, node: str) -> list[FaultState]:
    return [f for f in state.faults if f.node == node]


def _lookup(lab: Lab, node: str, name: str) -> Fault:
    if node not in lab.state.nodes:
        raise LabError(f"lab {lab.state.id} has no node '{node}'")
    fault = FAULTS.get(name)
    if fault is None:
        raise LabError(f"no fault '{name}'; the faults are: {', '.join(FAULTS)}")
    if fault.backends and lab.state.backend not in fault.backends:
        raise LabError(f"fault '{name}' needs the {' or '.join(fault.backends)} backend; lab {lab.state.id} runs "
                     f"{lab.state.backend}")
    return fault


def break_fault(lab: Lab, node: str, name: str) -> Fault:
    """Make fault ``name`` on ``node`` (recorded first); LabError when it cannot be made."""
    fault = _lookup(lab, node, name)
    if any(f.fault == name for f in _active(lab.state, node)):
        raise LabError(f"fault '{name}' is already active on {node} (pycni lab heal {node} {name})")
    record = FaultState(node=node, fault=name, stopped_agent=fault.stop_agent)
    lab.state.faults.append(record)
    lab.state.save()
    target = Target(lab, node, name)
    try:
        if fault.stop_agent:
            lab.stop_agent(node)
        record.undo = fault.inject(target)
    except BaseException:
        _forget(lab, record)
        _restart_if_clear(lab, node)
        raise
    lab.state.save()
    return fault


def _forget(lab: Lab, record: FaultState) -> None:
    lab.state.faults = [f for f in lab.state.faults if f is not record]
    lab.state.save()


def heal_faults(lab: Lab, node: str, name: str | None = None) -> list[str]:
    """Heal ``name`` (or every fault) on ``node``; returns the faults healed, last made first."""
    if node not in lab.state.nodes:
        raise LabError(f"lab {lab.state.id} has no node '{node}'")
    records = [f for f in reversed(_active(lab.state, node)) if name is None or f.fault == name]
    if name is not None and not records:
        raise LabError(f"fault '{name}' is not active on {node}")
    for record in records:
        FAULTS[record.fault].heal(Target(lab, node, record.fault), record.undo)
        _forget(lab, record)
    _restart_if_clear(lab, node)
    return [r.fault for r in records]


def _restart_if_clear(lab: Lab, node: str) -> None:
    """Start the node's agent unless a fault still needs it stopped; wait until it reconciled and all converged."""
    if any(f.stopped_agent for f in _active(lab.state, node)):
        return
    pid = lab.state.nodes[node].agent_pid
    if pid and lab._alive(pid):
        lab.wait_ready(AGENT_READY)
        return
    started = time.time()
    lab.start_agent(node)
    deadline = time.monotonic() + AGENT_READY
    while (_last_reconcile(lab, node) or 0.0) < started:
        if time.monotonic() > deadline:
            raise LabError(f"the agent of {node} did not reconcile within {AGENT_READY:.0f}s; see "
                         f"{os.path.join(lab.state.node_dir(node), 'agent.log')}")
        time.sleep(0.2)
    lab.wait_ready(AGENT_READY)


def _last_reconcile(lab: Lab, node: str) -> float | None:
    """When the node's agent last reconciled, from its status file (written after every pass); None if absent."""
    from pycni.cluster.status_file import STATUS_FILE, parse_status

    try:
        with open(os.path.join(lab.state.node_dir(node), "run", STATUS_FILE), encoding="utf-8") as f:
            return parse_status(f.read()).last_reconcile
    except (OSError, ValueError):
        return None


# -- doctor ---------------------------------------------------------------------------------------------------


def doctor_command(state: LabState, node: str, extra: Sequence[str] = ()) -> list[str]:
    """``ip netns exec <node> python -m pycni doctor`` with the node's agent flags and the lab's plugin dir."""
    d = state.node_dir(node)
    return [
        "ip", "netns", "exec", state.nodes[node].netns, sys.executable, "-m", "pycni", "doctor",
        "--node-name", node, "--etcd-endpoints", state.etcd_endpoint, "--etcd-prefix", PREFIX,
        "--cni-conf-dir", os.path.join(d, "net.d"), "--run-dir", os.path.join(d, "run"),
        "--ipam-data-dir", os.path.join(d, "ipam"), "--cni-bin-dir", os.path.join(state.dir, "bin"),
        "--cache-dir", os.path.join(d, "cache"), "--network-name", NETWORK_NAME, "--iface", "eth0", *extra,
    ]
