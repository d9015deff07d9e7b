"""Backends of the cluster agent: how nodes reach each other's pod subnets.

``make_backend(type, underlay, node, ...)`` builds one by its type name;
there is no registration by import side effect.
"""

from __future__ import annotations

from pycni.cluster.backends.base import Backend, Underlay
from pycni.spec.errors import InvalidConfig

__all__ = ["BACKEND_TYPES", "make_backend"]

BACKEND_TYPES = ("vxlan", "host-gw")


def make_backend(type_: str, underlay: Underlay, node: str, *, vni: int = 1, port: int = 8472,
                 mtu: int | None = None) -> Backend:
    if type_ == "vxlan":
        from pycni.cluster.backends.vxlan import VxlanBackend

        return VxlanBackend(underlay, node, vni=vni, port=port, mtu=mtu)
    if type_ == "host-gw":
        from pycni.cluster.backends.hostgw import HostGwBackend

        return HostGwBackend(underlay, mtu=mtu)
    raise InvalidConfig(f"backend.type: {type_!r} is not one of {', '.join(BACKEND_TYPES)}")
