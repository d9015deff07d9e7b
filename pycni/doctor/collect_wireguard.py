"""Read the node's WireGuard device for doctor, without ever starting or changing anything.

``collect_wireguard(run_dir)``: the device the agent runs, from the
wireguard-go pid it recorded in ``<run-dir>/wireguard/`` (its UAPI socket)
or, where the kernel's WireGuard holds the device, from ``wg show dump``.
``None`` when there is no device at all (the check says so); errors raise
(``collect`` records them under the part's name).
"""

from __future__ import annotations

import os
import time

from pycni.doctor.wireguard_view import WgDeviceView, WgPeerView

__all__ = ["collect_wireguard"]

DEVICE = "pycni-wg"


def collect_wireguard(run_dir: str) -> WgDeviceView | None:
    from pycni.cluster.backends.wireguard_control import parse_dump
    from pycni.cluster.backends.wireguard_keys import public_key, to_base64
    from pycni.cluster.backends.wireguard_supervisor import WireguardGo
    from pycni.net import wireguard_kernel
    from pycni.net.links import get_link, link_exists
    from pycni.net.wireguard_go import socket_path
    from pycni.net.wireguard_uapi import get_device

    pid = WireguardGo(DEVICE, os.path.join(run_dir, "wireguard")).running_pid()
    if pid is not None:
        state, implementation = get_device(socket_path(pid, DEVICE)), f"wireguard-go (pid {pid})"
    elif link_exists(DEVICE) and get_link(DEVICE).kind == "wireguard":
        state, implementation = parse_dump(wireguard_kernel.wg_dump(DEVICE)), "kernel"
    else:
        return None

    def b64(hex_key: str) -> str:
        return to_base64(bytes.fromhex(hex_key))

    return WgDeviceView(
        implementation=implementation,
        public_key=to_base64(public_key(bytes.fromhex(state.private_key))) if state.private_key else None,
        peers=tuple(WgPeerView(b64(p.public_key), p.endpoint, tuple(sorted(p.allowed_ips)), p.last_handshake,
                               p.rx_bytes, p.tx_bytes) for p in state.peers.values()),
        collected_at=time.time(),
    )
