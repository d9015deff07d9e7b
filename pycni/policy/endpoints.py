"""Pod endpoints: which addresses a pod got on which node, as the netpol plugin reported them.

Contract: pure codec and the merge of endpoints into pods.

- One key per attachment, under the cluster prefix:
  ``<prefix>/endpoints/<node>/<containerID>/<ifname>``; the value is JSON
  ``{"namespace", "name", "node", "ips", "containerID", "ifname", "netns",
  "network"}``. Keyed by attachment, not by pod name: a pod restarted in a
  new sandbox, or attached to two networks, has several, and a DEL removes
  exactly its own.
- ``pods_with_endpoints(objects, endpoints)`` gives the pods policy sees:
  every endpoint becomes its pod (labels and named ports from the Pod
  object of that namespace and name when there is one; otherwise no labels,
  as documented for pods started without a Pod object), with the
  addresses of all its endpoints. A Pod object without an endpoint has no
  address and matches nothing yet.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from pycni.policy.model import Pod

__all__ = ["Endpoint", "EndpointError", "decode", "encode", "endpoint_key", "endpoints_prefix", "pods_with_endpoints"]


class EndpointError(ValueError):
    """A stored or reported endpoint that cannot be read."""


@dataclass(frozen=True)
class Endpoint:
    namespace: str
    name: str
    node: str
    ips: tuple[str, ...]
    container_id: str
    ifname: str
    netns: str = ""
    network: str = ""

    @property
    def pod_key(self) -> str:
        return f"{self.namespace}/{self.name}"


def endpoints_prefix(prefix: str, node: str | None = None) -> str:
    base = f"{prefix.rstrip('/')}/endpoints/"
    return f"{base}{node}/" if node else base


def endpoint_key(prefix: str, endpoint: Endpoint) -> str:
    return f"{endpoints_prefix(prefix, endpoint.node)}{endpoint.container_id}/{endpoint.ifname}"


def encode(endpoint: Endpoint) -> bytes:
    return json.dumps({
        "namespace": endpoint.namespace, "name": endpoint.name, "node": endpoint.node, "ips": list(endpoint.ips),
        "containerID": endpoint.container_id, "ifname": endpoint.ifname, "netns": endpoint.netns,
        "network": endpoint.network,
    }, sort_keys=True).encode()


def from_fields(data: Mapping[str, Any], node: str) -> Endpoint:
    """An endpoint from a plugin request or a stored value; EndpointError names the bad field."""
    ips = data.get("ips", [])
    if not isinstance(ips, list) or not all(isinstance(ip, str) and ip for ip in ips):
        raise EndpointError("ips: must be a list of addresses")
    return Endpoint(_text(data, "namespace"), _text(data, "name"), node, tuple(ips), _text(data, "containerID"),
                    _text(data, "ifname"), _text(data, "netns", False), _text(data, "network", False))


def _text(data: Mapping[str, Any], field: str, required: bool = True) -> str:
    value = data.get(field, "")
    if not isinstance(value, str) or (required and not value):
        raise EndpointError(f"{field}: must be a non-empty string")
    return value


def decode(value: bytes) -> Endpoint:
    try:
        data = json.loads(value)
    except ValueError as exc:
        raise EndpointError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise EndpointError("not a JSON object")
    node = data.get("node")
    if not isinstance(node, str) or not node:
        raise EndpointError("node: must be a non-empty string")
    return from_fields(data, node)


def pods_with_endpoints(pod_objects: Iterable[Pod], endpoints: Iterable[Endpoint]) -> list[Pod]:
    by_key = {pod.key: pod for pod in pod_objects}
    merged: dict[str, Pod] = {}
    for endpoint in sorted(endpoints, key=lambda e: (e.pod_key, e.container_id, e.ifname)):
        pod = merged.get(endpoint.pod_key)
        if pod is None:
            pod = by_key.get(endpoint.pod_key) or Pod(endpoint.namespace, endpoint.name)
            pod = replace(pod, ips=(), node=endpoint.node)
        merged[endpoint.pod_key] = replace(pod, ips=tuple(dict.fromkeys((*pod.ips, *endpoint.ips))))
    return list(merged.values())
