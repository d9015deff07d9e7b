"""Doctor on a lab node from the tests, and what a test may assert while other tests churn the host.

CI runs the suite with ``pytest -n 2``: while a doctor test runs, other
tests create and delete namespaces, links, nftables tables and conntrack
entries. Doctor runs inside the lab node's namespace, so almost every check
sees only the node; the ones in ``HOST_WIDE`` read what the whole machine
shares (``/run/netns``, the kernel log, NetworkManager) and are passed to
doctor as ``--ignore`` unless the test is about them, and left out of
assertions about a clean node. The executor check is pointed at the node's
run dir (``PYCNI_EXECUTOR_SOCKET``), where no executor runs, so a host's
executor socket (a benchmark's, left behind) is not the lab node's. Tests then assert on the checks they are
about, never on the exact set of warnings.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Collection
from typing import Any

from pycni.cluster.lab import Lab
from pycni.cluster.lab_faults import FAULTS, break_fault, doctor_command, heal_faults

__all__ = ["HOST_WIDE", "PROBED", "assert_named_then_clean", "doctor", "node_env", "shown", "with_status"]

# Checks that read host-wide state other tests on this machine change.
HOST_WIDE = frozenset({"netns-leak", "conntrack", "csum-offload", "link-managers"})
# Faults on the data path: doctor's probes (ping the peer's gateway, don't-fragment at pod MTU - 28) run too.
PROBED = frozenset({"peer-state", "vtep-mac", "node-ip", "mtu", "vxlan-port", "forward-drop", "bird"})
# Faults whose heal leaves a legitimate warning for a while: a bird restarted with -R refuses to show its
# exports ("No valid tables") until its graceful restart recovery ends (seconds; bird.conf says at most 30 s);
# on bgp, sessions an address change reset come back after the birds' connect retry and error wait (5-30 s, ToR too).
SETTLE = {"bird": 60.0, "node-ip": 60.0, "mtu": 60.0}  # mtu: a stalled etcd connection retries on TCP's backoff
Checks = dict[str, dict[str, Any]]


def doctor(lab: Lab, node: str, *flags: str, about: Collection[str] = ()) -> tuple[int, list[dict[str, Any]]]:
    """``pycni doctor --json`` as ``pycni lab doctor`` runs it, host-wide checks ignored unless ``about`` them."""
    ignore = [f"--ignore={cid}" for cid in sorted(HOST_WIDE - set(about))]
    proc = subprocess.run(doctor_command(lab.state, node, ["--json", *ignore, *flags]), capture_output=True,
                          text=True, timeout=120, check=False, env=node_env(lab, node))
    assert proc.returncode in (0, 1), f"doctor could not run ({proc.returncode}): {proc.stderr}"
    document = json.loads(proc.stdout)
    assert document["node"] == node
    return proc.returncode, document["checks"]


def node_env(lab: Lab, node: str) -> dict[str, str]:
    """The environment doctor runs in: the executor socket looked for in the node's run dir, not the host's."""
    return {**os.environ, "PYCNI_EXECUTOR_SOCKET": os.path.join(lab.state.node_dir(node), "run", "executor.sock")}


def with_status(checks: list[dict[str, Any]], *statuses: str) -> Checks:
    return {c["id"]: c for c in checks if c["status"] in statuses}


def shown(checks: Checks) -> str:
    return "\n".join(f"{i}: {c['status']} {c['summary']} {c['evidence']}" for i, c in checks.items())


def assert_named_then_clean(lab: Lab, node: str, name: str) -> None:
    """Break ``name`` on ``node``: doctor names it, fails nothing the fault does not explain; heal: doctor clean."""
    fault = FAULTS[name]
    flags = ["--probe"] if name in PROBED else []
    about = {fault.check}
    break_fault(lab, node, name)
    undo = lab.state.faults[-1].undo
    try:
        code, checks = doctor(lab, node, *flags, about=about)
    finally:
        heal_faults(lab, node)
    problems = with_status(checks, "fail", "warn")
    assert fault.check in problems, f"doctor did not name {name} ({fault.check}); it found:\n{shown(problems)}"
    allowed = {fault.check, *fault.consequences} | ({"agent-down", "synthetic-pod"} if fault.stop_agent else set())
    unrelated = {i: c for i, c in with_status(checks, "fail").items() if i not in allowed}
    assert unrelated == {}, f"{name}: unrelated checks fail:\n{shown(unrelated)}"
    assert code == (1 if with_status(checks, "fail") else 0)
    if fault.stop_agent:  # the root cause first: the agent that would have repaired it is down
        order = [c["id"] for c in checks]
        assert problems["agent-down"]["status"] == "fail"
        assert fault.check == "agent-down" or order.index("agent-down") < order.index(fault.check)
    if name == "netns-leak":
        assert f"/run/netns/{undo['netns']}" in problems["netns-leak"]["evidence"]

    deadline = time.monotonic() + SETTLE.get(name, 0.0)
    while True:
        code, checks = doctor(lab, node, *flags)
        left = {i: c for i, c in with_status(checks, "fail", "warn").items() if i not in HOST_WIDE}
        if (left == {} and code == 0) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert left == {} and code == 0, f"after healing {name}:\n{shown(left)}"
    assert lab.state.faults == []
