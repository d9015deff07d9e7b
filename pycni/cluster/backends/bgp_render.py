"""Render a node's bird2 configuration (pure): a ``BirdSpec`` in, the text of bird.conf out.

What the rendered config does (bird2 syntax; Calico's BIRD 1.x templates
were the anchor, ../shared/notes/encryption-bgp.md §2):

- router id = the node's underlay address; ``timeformat protocol "%s"`` so
  ``show protocols`` prints epoch seconds (``node status`` parses them).
- ``protocol direct`` on the underlay device: bird2's iBGP resolves next
  hops recursively and needs the underlay subnet in its table, or learned
  routes become ``unreachable``.
- ``pod_subnet``: the node's own lease subnet as a static blackhole, the
  only route the node originates. Its own pods are on the bridge; the
  blackhole never reaches the kernel.
- The kernel protocol exports only routes learned by BGP, in bird's own
  route protocol (``proto bird``, 12): the agent's routes are ``proto
  124`` and neither touches the other's. ``learn off``, ``persist`` (bird
  leaves its routes when it stops) and ``graceful restart`` (a restarted
  bird, started with ``-R``, waits for its peers before it syncs the
  kernel): pods keep their routes across a bird restart.
- Import: subnets of exactly the cluster's subnet length inside the
  cluster network, never the node's own. Export: the node's own subnet; a
  route reflector also reflects the BGP routes of the pod network to its
  clients.
- One ``protocol bgp`` per session, from one template (short timers, as
  Calico: connect retry 5 s; graceful restart on). Names tell the session
  type to ``pycni node status``: ``Mesh_``, ``Global_``, ``Reflector_``
  (a route reflector this node peers with), ``Client_`` (this node reflects
  for it), followed by the peer address with ``_`` for ``.``.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

__all__ = ["KINDS", "RR_CLUSTER_ID", "BirdSpec", "Session", "render_bird_config", "session_name"]

#: Session kind -> protocol name prefix.
KINDS = {"mesh": "Mesh", "global": "Global", "reflector": "Reflector", "client": "Client"}
#: The cluster id every pycni route reflector uses (Calico's documented example value).
RR_CLUSTER_ID = IPv4Address("224.0.0.1")


def session_name(kind: str, ip: IPv4Address) -> str:
    return f"{KINDS[kind]}_{str(ip).replace('.', '_')}"


@dataclass(frozen=True, order=True)
class Session:
    """One BGP session of this node."""

    ip: IPv4Address
    kind: str  # a key of KINDS
    asn: int
    node: str = ""  # the peer's node name, when it is a node
    passive: bool = False  # wait for the peer to connect (mesh: toward higher addresses, as Calico)

    @property
    def name(self) -> str:
        return session_name(self.kind, self.ip)


@dataclass(frozen=True)
class BirdSpec:
    node: str
    router_id: IPv4Address
    iface: str
    asn: int
    subnet: IPv4Network  # the node's own lease
    network: IPv4Network  # the cluster network
    sessions: tuple[Session, ...]
    log_file: str
    announce: bool = True  # False: originate nothing (a node leaving withdraws its subnet first)


def _session_block(spec: BirdSpec, s: Session) -> str:
    lines = [f"protocol bgp {s.name} from pycni_peer {{"]
    if s.node:
        lines.append(f'  description "node {s.node}";')
    lines.append(f"  neighbor {s.ip} as {s.asn};")
    if s.passive:
        lines.append("  passive on;")
    if s.kind == "client":
        lines.append("  rr client;")
        lines.append(f"  rr cluster id {RR_CLUSTER_ID};")
        lines.append("  ipv4 { export filter pods_reflect; };")
    lines.append("}")
    return "\n".join(lines)


def render_bird_config(spec: BirdSpec) -> str:
    cluster = f"{spec.network}{{{spec.subnet.prefixlen},{spec.subnet.prefixlen}}}"
    static = f"  route {spec.subnet} blackhole;\n" if spec.announce else ""
    head = f"""\
# bird2 config of pycni node {spec.node}: written by the pycni agent from the subnet leases, do not edit.
router id {spec.router_id};
timeformat protocol "%s";
graceful restart wait 30;  # a restarted bird (-R) syncs the kernel once its peers are back, or after 30 s
log "{spec.log_file}" {{ info, remote, warning, error, auth, fatal, bug }};

protocol device {{ scan time 10; }}

# iBGP next hops resolve through the underlay subnet.
protocol direct underlay {{ ipv4; interface "{spec.iface}"; }}

# The one route this node originates: its own pod subnet.
protocol static pod_subnet {{
  ipv4;
{static}}}

# Only routes learned by BGP reach the kernel, as proto bird; the agent's own routes are proto 124.
protocol kernel {{
  ipv4 {{ import none; export filter {{ if source = RTS_BGP then accept; reject; }}; }};
  learn off;
  persist;
  graceful restart on;
  scan time 10;
}}

filter pods_in {{
  if net ~ [ {cluster} ] && net != {spec.subnet} then accept;
  reject;
}}

filter pods_out {{
  if proto = "pod_subnet" then accept;
  reject;
}}

filter pods_reflect {{
  if proto = "pod_subnet" then accept;
  if source = RTS_BGP && net ~ [ {cluster} ] then accept;
  reject;
}}

template bgp pycni_peer {{
  local {spec.router_id} as {spec.asn};
  hold time 9;
  keepalive time 3;
  connect delay time 2;
  connect retry time 5;
  error wait time 5, 30;
  graceful restart on;
  ipv4 {{ import filter pods_in; export filter pods_out; }};
}}
"""
    blocks = [_session_block(spec, s) for s in sorted(spec.sessions)]
    return head + "".join(f"\n{block}\n" for block in blocks)
