"""Doctor on a bgp node against snapshots (no root): bird's routes are the pod routes, and the bgp checks."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network

from pycni.cluster.backends.bgp_config import BgpPeer, BgpSettings
from pycni.cluster.backends.bgp_status import BgpPeerStatus
from pycni.doctor.bgp_view import BirdView
from pycni.doctor.checks_agent import cidr_overlap
from pycni.doctor.checks_bgp import bgp_export, bgp_session, bird
from pycni.doctor.checks_peers import peer_state
from pycni.doctor.collect_bgp import route_prefixes
from pycni.doctor.run import judge
from pycni.doctor.snapshot import LeaseView, LinkView, ProbeResult, RouteView, Snapshot, StoreView
from tests.unit.doctor.snapshots import NETWORK, OWN, PEER, failing, healthy, with_node

SOCKET = "/lab/n1/run/bird/bird.ctl"
TOR = IPv4Address("192.168.77.1")
MESH = "Mesh_192_168_77_12"
GLOBAL = "Global_192_168_77_1"


def session(name: str, address: str, state: str = "up", info: str = "Established") -> BgpPeerStatus:
    return BgpPeerStatus(name, address, "node-to-node mesh", state, 1_800_000_000, info)


def bird_view(**changes: object) -> BirdView:
    view = BirdView(SOCKET, 77, None, (session(GLOBAL, "192.168.77.1"), session(MESH, "192.168.77.12")), (OWN,),
                    {GLOBAL: (OWN,), MESH: (OWN,)})
    return replace(view, **changes)  # type: ignore[arg-type]


def bgp_node(settings: BgpSettings | None = None, view: BirdView | None = None,
             peer_route_proto: int | None = 12) -> Snapshot:
    """A healthy node n1 of a two-node bgp lab peering with the ToR: bird installed n2's route (proto bird)."""
    snap = healthy()
    leases = (LeaseView("n1", OWN, IPv4Address("192.168.77.11"), "bgp", None, 1500),
              LeaseView("n2", PEER, IPv4Address("192.168.77.12"), "bgp", None, 1500))
    store = StoreView(error=None, network=NETWORK, backend_type="bgp", leases=leases,
                      bgp=settings or BgpSettings(peers=(BgpPeer(TOR, 65000),)))
    assert snap.node is not None
    links = tuple(replace(link, mtu=1500) for link in snap.node.links if link.kind != "vxlan")
    routes: tuple[RouteView, ...] = (RouteView(IPv4Network("0.0.0.0/0"), TOR, "eth0", 3),
                                     RouteView(OWN, None, "cni0", 2))
    if peer_route_proto is not None:
        routes += (RouteView(PEER, IPv4Address("192.168.77.12"), "eth0", peer_route_proto),)
    snap = with_node(snap, links=links, routes=routes, peer_entries=None,
                     sysctls={k: v for k, v in snap.node.sysctls.items() if "pycni.1" not in k})
    conf = replace(snap.conf[0], mtu=1500) if snap.conf else None
    return replace(snap, store=store, bird=view or bird_view(), conf=(conf,) if conf else snap.conf,
                   probes=(ProbeResult("n2", PEER[1], True, 1472, True),))


def test_a_healthy_bgp_node_has_no_problem_at_all() -> None:
    snap = bgp_node()
    assert failing(snap) == [], [r for r in judge(snap) if r.status != "pass"]
    assert cidr_overlap(snap).status == "pass"
    assert peer_state(snap).summary == "routes for 1 peer(s) in place, 1 peer(s) answer pings"
    assert bgp_session(snap).summary == "2 BGP session(s) Established"
    assert bgp_export(snap).summary == f"{OWN} announced to 2 Established peer(s)"


def test_a_peer_route_of_the_agent_instead_of_birds_is_peer_state() -> None:
    result = peer_state(bgp_node(peer_route_proto=124))
    assert result.status == "fail"
    assert result.evidence == ("n2: no route 10.244.2.0/24 proto bird (via 192.168.77.12 or a router)",)
    assert "bgp-session" in result.fix


def test_a_peer_route_through_a_router_counts() -> None:
    snap = bgp_node(peer_route_proto=None)
    assert snap.node is not None
    snap = with_node(snap, routes=(*snap.node.routes, RouteView(PEER, TOR, "eth0", 12)))
    assert peer_state(snap).status == "pass"


def test_a_route_of_bird_still_overlaps_on_other_backends() -> None:
    snap = with_node(healthy(), routes=(RouteView(IPv4Network("10.244.9.0/24"), IPv4Address("192.168.77.9"),
                                                  "eth0", 12),))
    assert cidr_overlap(snap).status == "fail"


def test_other_backends_run_no_bird() -> None:
    assert {bird(healthy()).status, bgp_session(healthy()).status, bgp_export(healthy()).status} == {"pass"}
    assert bird(healthy()).summary == "backend vxlan runs no bird"


def test_a_dead_bird_fails_bird_and_the_others_point_at_it() -> None:
    snap = bgp_node(view=BirdView(SOCKET, None, "failed to ask bird ...: [Errno 111] Connection refused"))
    result = bird(snap)
    assert result.status == "fail" and result.summary.startswith("bird is not running")
    assert result.evidence == ("failed to ask bird ...: [Errno 111] Connection refused",)
    assert bgp_session(snap).status == bgp_export(snap).status == "skip"
    assert failing(snap) == ["bird"]


def test_a_dead_bird_with_the_agent_down_names_the_agent_first() -> None:
    snap = bgp_node(view=BirdView(SOCKET, None, "connection refused"))
    assert snap.agent is not None
    snap = replace(snap, agent=replace(snap.agent, pid_alive=False))
    results = {r.id: r for r in judge(snap)}
    assert [r.id for r in judge(snap) if r.status == "fail"][:2] == ["agent-down", "bird"]
    assert results["bird"].summary.endswith("(see agent-down)")


def test_a_bird_that_does_not_answer_is_named_with_its_pid() -> None:
    result = bird(bgp_node(view=BirdView(SOCKET, 77, "timed out")))
    assert result.summary == "bird runs (pid 77) but its control socket does not answer"
    assert "kill 77" in result.fix


def test_a_disabled_session_is_bgp_session_with_the_enable_command() -> None:
    view = bird_view(sessions=(session(GLOBAL, "192.168.77.1"), session(MESH, "192.168.77.12", "down", "")),
                     exported={GLOBAL: (OWN,)})
    snap = bgp_node(view=view, peer_route_proto=None)  # bird withdrew it
    result = bgp_session(snap)
    assert result.status == "fail"
    assert result.evidence == (f"{MESH} (node n2, 192.168.77.12): down",)
    assert result.fix == f"birdc -s {SOCKET} enable {MESH}  (disabled by hand)"
    assert failing(snap) == ["bgp-session", "peer-state"]
    assert next(r for r in judge(snap) if r.id == "peer-state").summary.endswith("(see bgp-session)")


def test_a_session_that_does_not_come_up_says_birds_state() -> None:
    view = bird_view(sessions=(session(GLOBAL, "192.168.77.1", "start", "Active Socket: Connection refused"),
                               session(MESH, "192.168.77.12")), exported={MESH: (OWN,)})
    result = bgp_session(bgp_node(view=view))
    assert result.evidence == (f"{GLOBAL} (AS 65000, 192.168.77.1): start Active Socket: Connection refused",)
    assert "port 179" in result.fix


def test_a_session_the_agent_has_not_configured() -> None:
    result = bgp_session(bgp_node(view=bird_view(sessions=(session(GLOBAL, "192.168.77.1"),))))
    assert result.status == "fail"
    assert result.evidence == (f"{MESH} (node n2, 192.168.77.12): not configured in bird",)
    assert "agent" in result.fix


def test_route_reflector_clients_expect_only_their_reflectors() -> None:
    settings = BgpSettings(mesh=False, route_reflectors=("n2",))
    view = bird_view(sessions=(session("Reflector_192_168_77_12", "192.168.77.12"),),
                     exported={"Reflector_192_168_77_12": (OWN,)})
    assert bgp_session(bgp_node(settings, view)).status == "pass"
    assert bgp_session(bgp_node(settings, bird_view())).evidence[0].startswith("Reflector_192_168_77_12")


def test_a_peer_off_the_segment_is_a_warning_with_the_reason() -> None:
    snap = bgp_node(BgpSettings())
    assert snap.store is not None
    far = LeaseView("n3", IPv4Network("10.244.3.0/24"), IPv4Address("10.9.0.3"), "bgp", None, 1500)
    snap = replace(snap, store=replace(snap.store, leases=(*snap.store.leases, far)),
                   bird=bird_view(sessions=(session(MESH, "192.168.77.12"),), exported={MESH: (OWN,)}))
    result = bgp_session(snap)
    assert result.status == "warn"
    assert any("not on the same layer-2 segment" in line for line in result.evidence)


def test_the_subnet_not_originated_or_not_sent_is_bgp_export() -> None:
    stale = IPv4Network("10.244.7.0/24")
    result = bgp_export(bgp_node(view=bird_view(originated=(stale,))))
    assert result.status == "fail"
    assert result.evidence[0] == f"bird originates {stale}, the lease is {OWN}"
    assert result.fix.startswith("restart the agent")
    result = bgp_export(bgp_node(view=bird_view(exported={GLOBAL: (OWN,), MESH: ()})))
    assert result.evidence == (f"{MESH}: {OWN} is not exported to it",)
    assert bgp_export(bgp_node(view=bird_view(originated=(OWN, stale)))).evidence == (
        f"bird also originates {stale}, which is not this node's lease",)


def test_a_silent_peer_gateway_is_a_warning_as_with_host_gw() -> None:
    snap = replace(bgp_node(), probes=(ProbeResult("n2", PEER[1], False, 1472, None),))
    assert peer_state(snap).status == "warn"


def test_route_prefixes_reads_show_route() -> None:
    reply = [(1007, "Table master4:"), (1007, "    10.244.2.0/24        blackhole [pod_subnet 23:41:07.442] * (200)"),
             (1007, "\tvia 192.168.77.12 on eth0"), (1007, "10.244.3.0/24  unicast [Mesh_x 12:00] * (100)"),
             (0, "")]
    assert route_prefixes(reply) == (IPv4Network("10.244.2.0/24"), IPv4Network("10.244.3.0/24"))


def test_an_unused_link_name_does_not_matter() -> None:
    snap = bgp_node()
    assert snap.node is not None
    snap = with_node(snap, links=(*snap.node.links, LinkView("lan1", "veth", 1500, "02:00:00:00:00:33", True)))
    assert failing(snap) == []
