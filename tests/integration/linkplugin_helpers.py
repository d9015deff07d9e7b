"""Helpers for the link-plugin tests (ptp, macvlan, ipvlan, vlan, host-device, dummy, tap).

``HostLinks`` creates uniquely named veth pairs (as macvlan masters, host
devices to lend, or "host addresses" to ping) and deletes them at teardown,
whatever the test did. ``Attach`` drives one network through the runtime
library as tests/integration/test_reference_chain.py does.
``use_free_subnets`` (from conftest) gives a lab fresh random subnets.
"""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass, field
from typing import Any

from pycni.runtime import CniConfig, RuntimeConf, load_network_conf
from pycni.spec.errors import CniError
from pycni.spec.result import Result
from tests.support.cnilab import CniLab
from tests.support.host import ip_json, link_exists, run

VERSIONS = ["0.3.1", "0.4.0", "1.0.0", "1.1.0"]


def token() -> str:
    return uuid.uuid4().hex[:6]


@dataclass
class HostLinks:
    """Veth pairs created for one test; ``cleanup`` removes whatever is left of them."""

    made: list[tuple[str, str | None]] = field(default_factory=list)  # (name, netns or None)

    def veth_pair(self, *, a_netns: str | None = None, b_netns: str | None = None, up: bool = True) -> tuple[str, str]:
        """A veth pair "pv<token>a" / "pv<token>b", each end optionally moved to a named netns, both up."""
        tok = token()
        a, b = f"pv{tok}a", f"pv{tok}b"
        run("ip", "link", "add", a, "type", "veth", "peer", "name", b)
        self.made += [(a, None), (b, None)]
        for name, ns in ((a, a_netns), (b, b_netns)):
            if ns:
                run("ip", "link", "set", name, "netns", ns)
                self.made.append((name, ns))
            if up:
                run("ip", "link", "set", name, "up", netns=ns)
        return a, b

    def cleanup(self) -> None:
        for name, ns in reversed(self.made):
            if ns is None or run("ip", "netns", "pids", ns, check=False).returncode == 0:
                run("ip", "link", "delete", name, netns=ns, check=False)


@dataclass
class Attach:
    """One network (a one-plugin conflist) attached to namespaces through pycni's runtime library."""

    lab: CniLab
    name: str
    plugin: dict[str, Any]
    version: str = "1.0.0"

    def __post_init__(self) -> None:
        self.lab.write_conflist(self.name, [self.plugin], version=self.version)
        self.netlist = load_network_conf(str(self.lab.conf_dir), self.name)
        self.cni = CniConfig(self.lab.cni_path, cache_dir=str(self.lab.cache_dir))

    def rt(self, netns: str, ifname: str = "eth0", container_id: str | None = None, **kw: Any) -> RuntimeConf:
        return RuntimeConf(
            container_id=container_id or "ctr-" + netns.rsplit("/", 1)[-1][-10:], netns=netns, ifname=ifname, **kw
        )

    def add(self, rt: RuntimeConf) -> Result:
        return self.cni.add_network_list(self.netlist, rt)

    def check(self, rt: RuntimeConf) -> None:
        self.cni.check_network_list(self.netlist, rt)

    def delete(self, rt: RuntimeConf) -> None:
        self.cni.del_network_list(self.netlist, rt)

    def status(self) -> None:
        self.cni.get_status_network_list(self.netlist)

    def add_error(self, rt: RuntimeConf) -> CniError:
        try:
            self.add(rt)
        except CniError as exc:
            return exc
        raise AssertionError(f"ADD of {self.plugin} unexpectedly succeeded")


def host_local(
    lab: CniLab, *, v4: bool = True, v6: bool = False, routes: bool = True, range_start: str = "", range_end: str = ""
) -> dict[str, Any]:
    """A host-local IPAM section over the lab's unique subnets, data kept in the lab."""
    ranges: list[list[dict[str, str]]] = []
    route_list: list[dict[str, str]] = []
    if v4:
        r = {"subnet": lab.subnet4}
        if range_start:
            r["rangeStart"] = range_start
        if range_end:
            r["rangeEnd"] = range_end
        ranges.append([r])
        route_list.append({"dst": "0.0.0.0/0"})
    if v6:
        ranges.append([{"subnet": lab.subnet6}])
        route_list.append({"dst": "::/0"})
    ipam: dict[str, Any] = {"type": "host-local", "ranges": ranges, "dataDir": str(lab.ipam_dir)}
    if routes:
        ipam["routes"] = route_list
    return ipam


def subnet_host(subnet: str, n: int) -> str:
    """The n-th address of a subnet written "a.b.c.0/24" or "fd00:x:y::/64"."""

    return str(ipaddress.ip_network(subnet)[n])


def addresses(ifname: str, netns: str | None, family: str | None = None) -> list[str]:
    """ "addr/prefix" of the global addresses on a link."""
    out = []
    for link in ip_json("addr", "show", "dev", ifname, netns=netns):
        for a in link.get("addr_info", []):
            if a.get("scope") == "global" and (family is None or a["family"] == family):
                out.append(f"{a['local']}/{a['prefixlen']}")
    return out


def link_details(ifname: str, netns: str | None) -> dict[str, Any]:
    (link,) = ip_json("-d", "link", "show", "dev", ifname, netns=netns)
    return link


def kernel_supports(kind: str, netns: str) -> bool:
    """Whether ``ip link add ... type kind`` works (tried inside a scratch netns the caller owns)."""
    parent = []
    if kind in ("ipvlan", "vlan", "macvlan"):
        run("ip", "link", "add", "kprobe0", "type", "veth", "peer", "name", "kprobe1", netns=netns)
        parent = ["link", "kprobe0"]
    extra = ["id", "10"] if kind == "vlan" else []
    ok = run("ip", "link", "add", *parent, "kprobe2", "type", kind, *extra, netns=netns, check=False).returncode == 0
    for name in ("kprobe2", "kprobe0"):
        run("ip", "link", "delete", name, netns=netns, check=False)
    return ok


def assert_gone(ifname: str, netns: str) -> None:
    assert not link_exists(ifname, netns), f"{ifname} still exists in {netns}"
