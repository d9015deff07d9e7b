"""The lab's BGP parts (``pycni lab up --backend bgp``): a top-of-rack router, and the nodes' birds.

- The ToR is bird2 in the underlay namespace (the lab's router, ``ul0`` at
  UNDERLAY .1), AS ``TOR_ASN``, with one ``neighbor range`` over the
  underlay: every node's session to it is dynamic (``dynbgp1``...), so
  nodes come and go without touching its config. It learns every pod subnet
  over eBGP and installs them in the underlay namespace's kernel, so the
  outside world behind it reaches pods without NAT.
- Nodes peer with it as a global peer (``Backend.Peers``); among themselves
  they run the mesh, or route reflectors when the lab is built with some.
  The ToR's re-announcements of pod subnets carry the cluster's AS in
  their path, so nodes drop them (AS-path loop): node-to-node traffic never
  detours through the ToR.
- Every bird's files live under the lab's directory (ToR: ``<lab>/tor``,
  node: ``<node>/run/bird``): ``down`` stops them by their pid files, and
  ``birdc`` run through ``pycni lab exec`` is pointed at the right socket.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network
from typing import TYPE_CHECKING

from pycni.cluster.backends.bgp_bird import BirdPaths, BirdSupervisor
from pycni.cluster.backends.bgp_config import DEFAULT_ASN, BgpPeer, BgpSettings
from pycni.cluster.backends.bgp_control import BirdError, query
from pycni.cluster.lab_state import UNDERLAY

if TYPE_CHECKING:
    from pycni.cluster.lab_state import LabState

__all__ = [
    "TOR_ASN",
    "TOR_NAMES",
    "birdc_command",
    "lab_settings",
    "node_bird",
    "render_tor_config",
    "start_tor",
    "stop_birds",
    "tor_bird",
    "tor_subnets",
]

TOR_ASN = 65000
TOR_NAMES = ("tor",)


def lab_settings(tor_ip: IPv4Address, route_reflectors: Sequence[str] = ()) -> BgpSettings:
    """A mesh (or the given reflectors) in AS 64512, every node peering with the ToR."""
    return BgpSettings(asn=DEFAULT_ASN, mesh=not route_reflectors, route_reflectors=tuple(route_reflectors),
                       peers=(BgpPeer(tor_ip, TOR_ASN),))


def render_tor_config(tor_ip: IPv4Address, network: IPv4Network, log_file: str, *, subnet_len: int = 24,
                      underlay: IPv4Network = UNDERLAY, cluster_asn: int = DEFAULT_ASN) -> str:
    return f"""\
# bird2 config of the pycni lab's top-of-rack router, written by pycni lab.
router id {tor_ip};
timeformat protocol "%s";
log "{log_file}" {{ info, remote, warning, error, auth, fatal, bug }};

protocol device {{ scan time 10; }}

protocol kernel {{
  ipv4 {{ import none; export filter {{ if source = RTS_BGP then accept; reject; }}; }};
  learn off;
}}

# Every node of the underlay, as it comes: one dynamic session each.
protocol bgp nodes {{
  local {tor_ip} as {TOR_ASN};
  neighbor range {underlay} as {cluster_asn};
  hold time 9;
  keepalive time 3;
  # A node's session that failed (its address moved, its bird restarted) is refused until this wait
  # ends: bird's default, 60 s growing to 300, outlasts a lab's faults; the nodes' birds use the same.
  error wait time 5, 30;
  graceful restart on;
  ipv4 {{
    import filter {{ if net ~ [ {network}{{{subnet_len},{subnet_len}}} ] then accept; reject; }};
    export all;
  }};
}}
"""


def tor_bird(state: LabState) -> BirdSupervisor:
    return BirdSupervisor(BirdPaths(os.path.join(state.dir, "tor")), prefix=("ip", "netns", "exec",
                                                                              state.underlay_ns))


def node_bird(state: LabState, node: str) -> BirdSupervisor:
    return BirdSupervisor(BirdPaths.under(os.path.join(state.node_dir(node), "run")))


def tor_subnets(state: LabState) -> set[IPv4Network]:
    """The pod subnets the ToR's bird has learned (``show route``); empty while it does not answer."""
    try:
        reply = query(tor_bird(state).paths.socket, "show route", timeout=5)
    except BirdError:
        return set()
    return {IPv4Network(text.split()[0]) for code, text in reply if code == 1007 and text[:1].isdigit()}


def start_tor(state: LabState, network: IPv4Network) -> str:
    bird = tor_bird(state)
    return "; ".join(bird.apply(render_tor_config(state.etcd_ip, network, bird.paths.log)))


def stop_birds(state: LabState) -> list[str]:
    """Stop the ToR's and every node's bird; what was stopped."""
    stopped = []
    birds = [("tor", tor_bird(state))] + [(name, node_bird(state, name)) for name in state.nodes]
    for name, bird in birds:
        pid = bird.pid()
        if pid is not None:
            bird.stop(timeout=3)
            stopped.append(f"bird of {name} (pid {pid})")
    return stopped


def birdc_command(state: LabState, name: str, cmd: Sequence[str]) -> list[str]:
    """``birdc ...`` aimed at the bird of ``name`` (the ToR or a node), unless the command names a socket."""
    cmd = list(cmd)
    if not cmd or os.path.basename(cmd[0]) != "birdc" or "-s" in cmd:
        return cmd
    if name in TOR_NAMES:
        socket = tor_bird(state).paths.socket
    elif name in state.nodes:
        socket = node_bird(state, name).paths.socket
    else:
        return cmd
    return [cmd[0], "-s", socket, *cmd[1:]]
