"""Read the node's bird for doctor through its control socket, never starting or changing anything.

``collect_bird(run_dir)``: the bird the agent runs for the bgp backend
(``<run-dir>/bird``: pid file, control socket). Its sessions come from
``show protocols all`` parsed as ``pycni node status`` parses them, what it
originates from ``show route protocol pod_subnet``, and what it sends each
Established peer from ``show route export <session>``. A socket that does
not answer is recorded in ``BirdView.error``, not raised.
"""

from __future__ import annotations

from ipaddress import IPv4Network

from pycni.doctor.bgp_view import BirdView

__all__ = ["collect_bird", "route_prefixes"]

# bird's name for the static protocol holding the node's own subnet (backends.bgp_render)
ORIGIN_PROTOCOL = "pod_subnet"
MAX_EXPORT_QUERIES = 64  # a big mesh: check what is sent to the first 64 Established peers, not every one


def route_prefixes(reply: list[tuple[int, str]]) -> tuple[IPv4Network, ...]:
    """The prefixes of a ``show route`` reply (``1007`` lines: ``Table master4:``, then ``10.244.2.0/24 ...``)."""
    found: list[IPv4Network] = []
    for code, text in reply:
        words = text.split()
        if code != 1007 or not words:
            continue
        try:
            found.append(IPv4Network(words[0]))
        except ValueError:
            continue
    return tuple(dict.fromkeys(found))


def collect_bird(run_dir: str, *, timeout: float = 2.0) -> BirdView:
    from pycni.cluster.backends.bgp_bird import BirdPaths, BirdSupervisor
    from pycni.cluster.backends.bgp_control import BirdError, query
    from pycni.cluster.backends.bgp_status import bgp_peers, parse_protocols

    paths = BirdPaths.under(run_dir)
    pid = BirdSupervisor(paths).pid()
    try:
        sessions = tuple(bgp_peers(parse_protocols(query(paths.socket, "show protocols all", timeout=timeout))))
    except BirdError as exc:
        return BirdView(paths.socket, pid, str(exc))
    refused: list[str] = []

    def routes(command: str) -> tuple[IPv4Network, ...] | None:
        try:
            return route_prefixes(query(paths.socket, command, timeout=timeout))
        except BirdError as exc:  # bird answers but refuses (recovering after a restart): say so, go on
            refused.append(str(exc))
            return None

    originated = routes(f"show route protocol {ORIGIN_PROTOCOL}")
    up = [s.name for s in sessions if "Established" in s.info][:MAX_EXPORT_QUERIES]
    exported = {name: found for name in up if (found := routes(f"show route export {name}")) is not None}
    return BirdView(paths.socket, pid, None, sessions, originated, exported, tuple(refused))
