"""netpol (chained): register the pod with the node's policy agent and wait until its policy is in force.

The last plugin of the conflist the pycni agent writes. It makes no kernel
change itself: it tells the agent on this node which pod got which
addresses, and ADD returns only when the agent answers that the pod's
NetworkPolicy is in the kernel. A pod under a default deny therefore never
receives a packet it should not, and a pod an allow rule selects gets its
first connection through (fail closed, as Calico's CNI plugin waits).

Config: ``agentSocket`` (default ``$PYCNI_RUN_DIR/policy.sock``, i.e.
/run/pycni/policy.sock), ``timeoutSeconds`` (default 10, how long ADD
waits for the agent). prevResult is required and returned unchanged.

Identity comes from CNI_ARGS as kubelet, containerd and CRI-O pass it:
``K8S_POD_NAMESPACE`` and ``K8S_POD_NAME``. Without them the pod is
``default/<container id>``: in namespace ``default``, with no labels until
a Pod object of that name is applied.

- ADD: the addresses are prevResult's IPs on CNI_IFNAME (or on no
  interface). No answer in time fails with code 11 naming the agent; the
  runtime then runs DEL, which undoes the rest of the chain.
- DEL: best effort. An agent that is down removes the endpoint when it
  sweeps attachments that are gone.
- CHECK: the agent must confirm the endpoint is enforced.
- STATUS: the agent must answer (code 50 otherwise).

Wire format (one request per connection, on a unix stream socket): the
request is one JSON object, the write side is shut, the answer is one JSON
object ``{"ok": true}`` or ``{"ok": false, "error": "..."}``.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Mapping
from typing import Any

from pycni.rundir import run_dir
from pycni.skel import CmdArgs, Plugin
from pycni.spec.errors import CniError, InvalidConfig, PluginNotAvailable, TryAgainLater
from pycni.spec.result import Result

__all__ = ["DEFAULT_TIMEOUT", "PLUGIN", "AgentUnreachable", "call_agent", "default_socket"]

PLUGIN_TYPE = "netpol"
DEFAULT_TIMEOUT = 10.0
SOCKET_NAME = "policy.sock"
_MAX_ANSWER = 1 << 16


class AgentUnreachable(Exception):
    """The agent did not answer: not listening, or not in time."""


def default_socket(environ: Mapping[str, str]) -> str:
    return f"{run_dir(environ)}/{SOCKET_NAME}"


def call_agent(path: str, request: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Send one request to the agent and return its answer; AgentUnreachable when none comes."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(json.dumps(request).encode())
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := sock.recv(4096):
                chunks.append(chunk)
                if sum(map(len, chunks)) > _MAX_ANSWER:
                    raise AgentUnreachable("answer too long")
    except TimeoutError:
        raise AgentUnreachable(f"no answer within {timeout:g}s") from None
    except OSError as exc:
        raise AgentUnreachable(exc.strerror or str(exc)) from None
    try:
        answer = json.loads(b"".join(chunks))
    except ValueError:
        raise AgentUnreachable("answer is not JSON") from None
    if not isinstance(answer, dict):
        raise AgentUnreachable("answer is not a JSON object")
    return answer


def _conf(args: CmdArgs) -> tuple[str, float]:
    path = args.config.get("agentSocket", default_socket(args.environ))
    if not isinstance(path, str) or not path:
        raise InvalidConfig("agentSocket: must be a non-empty string")
    timeout = args.config.get("timeoutSeconds", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 300:
        raise InvalidConfig(f"timeoutSeconds: must be a number of seconds in (0, 300], got {timeout!r}")
    return path, float(timeout)


def _identity(args: CmdArgs) -> dict[str, str]:
    cni_args = args.cni_args()
    namespace = cni_args.get("K8S_POD_NAMESPACE") or "default"
    name = cni_args.get("K8S_POD_NAME") or args.container_id
    return {"namespace": namespace, "name": name, "containerID": args.container_id, "ifname": args.ifname,
            "netns": args.netns, "network": args.network_name}


def _addresses(prev: Result, ifname: str) -> list[str]:
    ours = {i for i, iface in enumerate(prev.interfaces) if iface.name == ifname and iface.sandbox}
    return [str(ip.address.ip) for ip in prev.ips if ip.interface is None or ip.interface in ours]


def _ask(args: CmdArgs, request: dict[str, Any]) -> dict[str, Any]:
    path, timeout = _conf(args)
    try:
        answer = call_agent(path, request, timeout)
    except AgentUnreachable as exc:
        raise TryAgainLater(f"netpol: the policy agent at {path} did not confirm the pod's policy: {exc}") from None
    if not answer.get("ok"):
        raise CniError(f"netpol: the policy agent at {path} refused: {answer.get('error', 'no reason given')}")
    return answer


def cmd_add(args: CmdArgs) -> Result:
    prev = args.prev_result()
    if prev is None:
        raise InvalidConfig("prevResult: missing; netpol must be called as a chained plugin")
    _ask(args, {"op": "add", **_identity(args), "ips": _addresses(prev, args.ifname)})
    return prev


def cmd_del(args: CmdArgs) -> None:
    path, timeout = _conf(args)
    with contextlib.suppress(AgentUnreachable):  # the agent sweeps endpoints whose attachment is gone
        call_agent(path, {"op": "del", **_identity(args)}, min(timeout, 2.0))


def cmd_check(args: CmdArgs) -> None:
    if args.prev_result() is None:
        raise InvalidConfig("prevResult: missing; netpol must be called as a chained plugin")
    _ask(args, {"op": "check", **_identity(args)})


def cmd_status(args: CmdArgs) -> None:
    path, timeout = _conf(args)
    try:
        call_agent(path, {"op": "status"}, timeout)
    except AgentUnreachable as exc:
        raise PluginNotAvailable(f"netpol: the policy agent at {path} does not answer: {exc}") from None


PLUGIN = Plugin(
    name=PLUGIN_TYPE,
    add=cmd_add,
    delete=cmd_del,
    check=cmd_check,
    status=cmd_status,
    about="pycni netpol: register the pod with the node's policy agent and wait until its policy is enforced",
)
