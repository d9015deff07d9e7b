"""Backends of the cluster agent: how nodes reach each other's pod subnets.

``make_backend(type, underlay, node, ...)`` builds one by its type name;
there is no registration by import side effect.
"""

from __future__ import annotations

from ipaddress import IPv4Network
from typing import TYPE_CHECKING

from pycni.cluster.backends.base import Backend, Underlay
from pycni.rundir import DEFAULT_RUN_DIR
from pycni.spec.errors import InvalidConfig

if TYPE_CHECKING:
    from pycni.cluster.backends.bgp_config import BgpSettings
    from pycni.cluster.backends.wireguard_config import WireguardOptions
    from pycni.cluster.backends.wireguard_lease import LeaseAccess

__all__ = ["BACKEND_TYPES", "make_backend"]

BACKEND_TYPES = ("vxlan", "host-gw", "bgp", "wireguard")


def make_backend(type_: str, underlay: Underlay, node: str, *, vni: int = 1, port: int = 8472,
                 mtu: int | None = None, bgp: BgpSettings | None = None, network: IPv4Network | None = None,
                 run_dir: str = DEFAULT_RUN_DIR, wireguard: WireguardOptions | None = None,
                 lease: LeaseAccess | None = None) -> Backend:
    if type_ == "vxlan":
        from pycni.cluster.backends.vxlan import VxlanBackend

        return VxlanBackend(underlay, node, vni=vni, port=port, mtu=mtu)
    if type_ == "host-gw":
        from pycni.cluster.backends.hostgw import HostGwBackend

        return HostGwBackend(underlay, mtu=mtu)
    if type_ == "bgp":
        from pycni.cluster.backends.bgp import BgpBackend
        from pycni.cluster.backends.bgp_config import BgpSettings

        if network is None:
            raise InvalidConfig("backend.type: bgp needs the cluster network (its import filter)")
        return BgpBackend(underlay, node, settings=bgp or BgpSettings(), network=network, run_dir=run_dir, mtu=mtu)
    if type_ == "wireguard":
        from pycni.cluster.backends.wireguard import WireguardBackend, WireguardSetup
        from pycni.cluster.backends.wireguard_config import WireguardOptions

        if network is None:
            raise InvalidConfig("backend.type: wireguard needs the cluster network (its fail-closed blackhole)")
        setup = WireguardSetup(wireguard or WireguardOptions(), network, run_dir, lease)
        return WireguardBackend(underlay, node, setup, mtu=mtu)
    raise InvalidConfig(f"backend.type: {type_!r} is not one of {', '.join(BACKEND_TYPES)}")
