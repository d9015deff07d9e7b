"""The wireguard backend: pod traffic between nodes encrypted by WireGuard, one device per node.

Per node: a private key in ``<run-dir>/wireguard/private.key`` (0600, made
once, kept across agent and wireguard-go restarts), its public key and
listen port published in the lease (``BackendData`` ``{"PublicKey",
"Port"}``, Flannel's layout). Per peer: a WireGuard peer and a route, as
``wireguard_plan`` says. The device is ``pycni-wg`` and carries
``<own subnet>.0/32`` (as the VXLAN device does), so the node's own traffic
into the tunnel has a cluster source address.

The device is the kernel's where ``ip link add ... type wireguard`` works,
else a wireguard-go process that outlives the agent (``wireguard_supervisor``):
an agent restart adopts it and changes nothing, so pod traffic goes on.
The kernel path is written but was not run on the machine it was built on
(no WireGuard module there).

Fail closed: a blackhole route for the whole cluster network (the agent's
route protocol) sits under the per-peer routes. Traffic to a peer without
a key, or while the device is gone (wireguard-go killed: its tun device and
the routes through it vanish with it), drops there instead of leaving by the
default route in plaintext.

Pod MTU = underlay MTU - 60 (outer IPv4 20 + UDP 8 + WireGuard header 16 +
tag 16; a padded packet never exceeds it), unless the config sets one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv4Network
from typing import Any

from pycni.cluster.backends.base import Changes, Desired, Peer, Underlay
from pycni.cluster.backends.kernel import converge_routes
from pycni.cluster.backends.wireguard_config import WireguardOptions
from pycni.cluster.backends.wireguard_control import Control, open_control
from pycni.cluster.backends.wireguard_keys import (
    from_base64,
    load_or_create_key,
    public_key,
    replace_key,
    to_base64,
    to_hex,
)
from pycni.cluster.backends.wireguard_lease import LeaseAccess, OwnLease, publish, read_own
from pycni.cluster.backends.wireguard_peers import device_changes
from pycni.cluster.backends.wireguard_plan import TYPE, WireguardDesired, plan_wireguard

__all__ = ["DEVICE", "OVERHEAD", "WireguardBackend", "WireguardSetup"]

log = logging.getLogger("pycni.agent")

DEVICE = "pycni-wg"
OVERHEAD = 60  # over IPv4; 80 over IPv6 (not supported by the agent yet)


@dataclass(frozen=True)
class WireguardSetup:
    """What the backend needs beyond the underlay: the cluster's options, network, state dir, lease access."""

    options: WireguardOptions
    network: IPv4Network
    state_dir: str  # the agent's run dir; the backend keeps its files in <state_dir>/wireguard/
    lease: LeaseAccess | None = None  # None: no key publishing or rotation (tests)


class WireguardBackend:
    type = TYPE

    def __init__(self, underlay: Underlay, node: str, setup: WireguardSetup, *, mtu: int | None = None,
                 device: str = DEVICE) -> None:
        self.underlay = underlay
        self.node = node
        self.setup = setup
        self.device = device
        self._mtu = mtu
        self.dir = os.path.join(setup.state_dir, "wireguard")
        self.key_file = os.path.join(self.dir, "private.key")
        self.private = load_or_create_key(self.key_file)
        self._psk = to_hex(from_base64(setup.options.psk, "Backend.PSK")) if setup.options.psk else None
        self._control: Control | None = None

    # -- pure ------------------------------------------------------------------------

    def pod_mtu(self) -> int:
        return self._mtu or self.underlay.mtu - OVERHEAD

    @property
    def public_key(self) -> str:
        return to_base64(public_key(self.private))

    def backend_data(self) -> dict[str, Any]:
        return {"PublicKey": self.public_key, "Port": self.setup.options.listen_port}

    def plan(self, own: Peer, peers: Iterable[Peer]) -> WireguardDesired:
        return plan_wireguard(own, peers, device=self.device, own_key=to_hex(public_key(self.private)),
                              network=self.setup.network, default_port=self.setup.options.listen_port,
                              keepalive=self.setup.options.keepalive, psk=self._psk)

    # -- kernel ----------------------------------------------------------------------

    def control(self) -> Control:
        if self._control is None:
            self._control = open_control(self.device, self.dir)
        return self._control

    def converge(self, own: Peer, desired: Desired) -> Changes:
        from pycni.cluster.owned_routes import ROUTE_PROTO
        from pycni.net import addrs, links
        from pycni.net.blackhole import replace_blackhole_route
        from pycni.net.sysctl import enable_ip_forward
        from pycni.net.wireguard_go import nudge

        if not isinstance(desired, WireguardDesired):
            raise TypeError("the wireguard backend converges only its own plans")
        enable_ip_forward(4)
        added: list[str] = []
        removed: list[str] = []
        lease = self._own_lease(own)
        if lease is not None and lease.rotation is not None:
            self.private = replace_key(self.key_file)
            added.append(f"new private key (rotation {lease.rotation}), public key {self.public_key}")
        control = self.control()
        if control.ensure():
            added.append(f"{control.describe()} for {self.device}")
        # The floor first: while anything below is missing, pod traffic to peers drops rather than leaks.
        replace_blackhole_route(self.setup.network, ROUTE_PROTO)
        link = links.get_link(self.device)
        if link.mtu != self.pod_mtu():
            links.set_link_mtu(self.device, self.pod_mtu())
        assert own.subnet is not None  # the agent refuses IPv6-only on wireguard
        address = IPv4Interface(f"{own.subnet.network_address}/32")
        present = addrs.list_addresses(self.device, 4)
        if address not in present:
            addrs.add_address(self.device, address)
            added.append(f"address {address} on {self.device}")
        for stale in present:
            if stale != address:
                addrs.del_address(self.device, stale, missing_ok=True)
                removed.append(f"address {stale} on {self.device}")
        if not link.up:
            links.set_link_up(self.device)
        state = control.get()
        lines, touched = device_changes(state, to_hex(self.private), self.setup.options.listen_port,
                                        desired.peers)
        if lines:
            control.set(lines)
            wanted = {p.public_key for p in desired.peers}
            removed += [f"wireguard peer {to_base64(bytes.fromhex(k))}" for k in sorted(state.peers.keys() - wanted)]
            added += [f"wireguard peer {p.node} {to_base64(bytes.fromhex(p.public_key))} at {p.endpoint} "
                      f"allowed {','.join(p.allowed_ips)}" for p in touched]
        r_added, r_removed = converge_routes(desired)
        added += r_added
        removed += r_removed
        if (lease is not None and not lease.publishes(self.backend_data())
                and publish(self._lease_access(), lease, self.backend_data())):
            added.append(f"lease publishes public key {self.public_key}")
        for peer in touched:  # start handshakes now: the first packet of a pod would otherwise wait for them
            nudge(peer.address)
        return Changes(tuple(added), tuple(removed))

    def _lease_access(self) -> LeaseAccess:
        assert self.setup.lease is not None
        return self.setup.lease

    def _own_lease(self, own: Peer) -> OwnLease | None:
        if self.setup.lease is None or own.subnet is None:
            return None
        try:
            return read_own(self.setup.lease, own.subnet)
        except Exception as exc:  # the datastore may be down: the kernel side goes on without it
            log.warning("cannot read the own lease (key publishing skipped this time): %s", exc)
            return None

    def teardown(self) -> None:
        from pycni.cluster.owned_routes import ROUTE_PROTO
        from pycni.net.blackhole import delete_blackhole_route

        converge_routes(Desired())
        self.control().close()
        delete_blackhole_route(self.setup.network, ROUTE_PROTO)
