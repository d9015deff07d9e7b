"""The ``ipam`` section of a dhcp network, as the plugin and the daemon read it.

Contract:

- ``daemonSocketPath`` (default ``/run/cni/dhcp.sock``) is where the
  plugin finds the daemon; only the plugin reads it.
- ``request`` and ``provide`` are read by the daemon into an ``OptionPlan``
  (``pycni.ipam.dhcp.options.plan_options`` says how); a bad entry is
  ``InvalidConfig`` naming it, before anything is sent.
- The network's ``name`` is part of the client identifier.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pycni.ipam.dhcp.options import OptionPlan, client_identifier, plan_options
from pycni.spec.errors import InvalidConfig

__all__ = ["DEFAULT_SOCKET", "LeaseRequest", "parse_lease_request", "socket_path"]

DEFAULT_SOCKET = "/run/cni/dhcp.sock"


def _ipam(config: Mapping[str, Any]) -> Mapping[str, Any]:
    ipam = config.get("ipam")
    if not isinstance(ipam, dict):
        raise InvalidConfig("ipam: expected an object")
    return ipam


def socket_path(config: Mapping[str, Any]) -> str:
    """``ipam.daemonSocketPath``, or the default socket."""
    value = _ipam(config).get("daemonSocketPath", "")
    if not isinstance(value, str):
        raise InvalidConfig("ipam.daemonSocketPath: expected a string")
    return value or DEFAULT_SOCKET


@dataclass(frozen=True)
class LeaseRequest:
    """What the daemon needs to acquire one attachment's lease."""

    client_id: bytes
    container_id: str
    network: str
    netns: str
    ifname: str
    options: OptionPlan


def parse_lease_request(
    config: Mapping[str, Any], container_id: str, netns: str, ifname: str, cni_args: Mapping[str, str]
) -> LeaseRequest:
    """The lease request of one attachment; InvalidConfig names a bad field."""
    ipam = _ipam(config)
    network = config.get("name", "")
    if not isinstance(network, str):
        raise InvalidConfig("name: expected a string")
    request, provide = ipam.get("request") or [], ipam.get("provide") or []
    if not isinstance(request, list):
        raise InvalidConfig("ipam.request: expected a list")
    if not isinstance(provide, list):
        raise InvalidConfig("ipam.provide: expected a list")
    client_id = client_identifier(container_id, network, ifname)
    plan = plan_options(request, provide, cni_args, client_id)
    client_id = dict(plan.provided).get(61, client_id)  # a provided client id replaces ours
    return LeaseRequest(client_id, container_id, network, netns, ifname, plan)
