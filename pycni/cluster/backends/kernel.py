"""Kernel steps shared by the backends: converge the agent's tagged routes."""

from __future__ import annotations

from pycni.cluster import owned_routes
from pycni.cluster.backends.base import Desired, RouteSpec, diff
from pycni.net.routes import RouteInfo

__all__ = ["converge_routes", "current_routes"]


def current_routes() -> dict[tuple[object, ...], RouteInfo]:
    """The agent's unicast routes here, keyed like ``RouteSpec`` minus onlink (the kernel reports no flags)."""
    return {(r.dst, r.gw, r.dev): r for r in owned_routes.list_owned_routes() if r.type == 1}  # not blackholes


def converge_routes(desired: Desired) -> tuple[list[str], list[str]]:
    """Install missing routes, then remove ours that are not wanted; returns (added, removed) descriptions.

    Adds come first: a route that changed its gateway is replaced in one
    step, and the old entry is gone before its delete (which then finds
    nothing), so traffic never lacks a route.
    """
    have = current_routes()
    wanted = {(r.dst, r.gw, r.dev): r for r in desired.routes}
    to_add, to_remove = diff(wanted, have)
    added, removed = [], []
    for key in to_add:
        spec: RouteSpec = wanted[key]
        owned_routes.replace_owned_route(spec.dst, gw=spec.gw, dev=spec.dev, onlink=spec.onlink)
        added.append(f"route {spec.dst} via {spec.gw} dev {spec.dev}")
    for key in to_remove:
        if owned_routes.delete_owned_route(have[key]):
            route = have[key]
            removed.append(f"route {route.dst} via {route.gw} dev {route.dev}")
    return added, removed
