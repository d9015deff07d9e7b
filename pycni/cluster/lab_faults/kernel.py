"""Faults in a node's network namespace: sysctls, links, addresses, neighbours, firewall tables, namespaces.

Each ``<fault>(target) -> undo`` makes one fault; its heal puts back what
``undo`` records. The firewall tables are named ``labfault_*``: foreign to
the agent, as another tool's would be.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from ipaddress import IPv4Network

from pycni.cluster.lab import LabError
from pycni.cluster.lab_faults.target import Target, Undo, host

LAN = "lan0"
FOREIGN_ADDR = "10.250.0.1/24"  # a bridge address from "an earlier cluster", outside the lab's network


def nothing(t: Target) -> Undo:
    return {}


def heal_nothing(t: Target, undo: Undo) -> None:
    pass


def sysctls(settings: dict[str, str]) -> Callable[[Target], Undo]:
    def inject(t: Target) -> Undo:
        old: dict[str, str] = {}
        for key, value in settings.items():
            old[key] = t.sysctl(key, value)
        return {"sysctls": old}

    return inject


def heal_sysctls(t: Target, undo: Undo) -> None:
    for key, value in undo.get("sysctls", {}).items():
        t.sysctl(key, value)


def rp_filter(t: Target) -> Undo:
    devices = ["all", "eth0"] + ([t.vxlan_device()] if t.state.backend == "vxlan" else [])
    return sysctls({f"net.ipv4.conf.{d.replace('.', '/')}.rp_filter": "1" for d in devices})(t)


def nft_table(family: str, table: str, chain: str, rule: str | None = None) -> Callable[[Target], Undo]:
    """A foreign table of one base chain (and rule), as another tool on the node would leave it."""

    def inject(t: Target) -> Undo:
        undo = {"nft_table": f"{family} {table}"}
        t.run("nft", f"add table {family} {table}")
        t.run("nft", f"add chain {family} {table} {chain}")
        if rule:
            t.run("nft", f"add rule {family} {table} {chain.split()[0]} {rule}")
        return undo

    return inject


def heal_nft(t: Target, undo: Undo) -> None:
    if t.lab.exec(t.node, ["nft", "list", "table", *undo["nft_table"].split()]).returncode == 0:
        t.run("nft", f"delete table {undo['nft_table']}")


def datastore(t: Target) -> Undo:
    etcd = t.state.etcd_ip
    return nft_table("inet", "labfault_etcd", "out { type filter hook output priority 0; }",
                      f"ip daddr {etcd} tcp dport 2379 reject with tcp reset")(t)


def iptables_mixed(t: Target) -> Undo:
    """kube-proxy in legacy mode beside the node's nftables: a legacy chain hooked into FORWARD (no drop)."""
    t.run("iptables-legacy", "-N", "KUBE-FORWARD")
    t.run("iptables-legacy", "-A", "FORWARD", "-j", "KUBE-FORWARD")
    return {}


def heal_iptables_mixed(t: Target, undo: Undo) -> None:
    # The legacy filter table itself stays registered in the namespace (the kernel never unregisters it).
    t.lab.exec(t.node, ["iptables-legacy", "-D", "FORWARD", "-j", "KUBE-FORWARD"])
    t.lab.exec(t.node, ["iptables-legacy", "-X", "KUBE-FORWARD"])


def bridge_stale_addr(t: Target) -> Undo:
    """cni0 carries an earlier network's address instead of its gateway, as on a node reused with a new range."""
    created = t.lab.exec(t.node, ["ip", "link", "show", "dev", "cni0"]).returncode != 0
    if created:  # no pod yet on this node: the bridge a reused node keeps from before
        t.run("ip", "link", "add", "cni0", "type", "bridge")
        t.run("ip", "link", "set", "cni0", "up")
    own = [f"{a['local']}/{a['prefixlen']}" for a in t.link_addresses("cni0")]
    t.run("ip", "addr", "flush", "dev", "cni0")
    t.run("ip", "addr", "add", FOREIGN_ADDR, "dev", "cni0")
    return {"created": created, "own": own}


def heal_bridge_stale_addr(t: Target, undo: Undo) -> None:
    ports = json.loads(t.run("ip", "-j", "link", "show", "master", "cni0") or "[]")
    if undo.get("created") and not ports:
        t.run("ip", "link", "delete", "cni0")
        return
    t.lab.exec(t.node, ["ip", "addr", "del", FOREIGN_ADDR, "dev", "cni0"])
    for address in undo.get("own", []):
        t.lab.exec(t.node, ["ip", "addr", "replace", address, "dev", "cni0"])


def netns_leak(t: Target) -> Undo:
    """A namespace named as containerd names a sandbox's, that no process or cached attachment uses."""
    u = os.urandom(16).hex()
    name = f"cni-{u[:8]}-{u[8:12]}-{u[12:16]}-{u[16:20]}-{u[20:]}"
    t.state.namespaces.append(name)  # recorded before it is made: lab down removes it
    t.state.save()
    host("ip", "netns", "add", name)
    return {"netns": name}


def heal_netns_leak(t: Target, undo: Undo) -> None:
    host("ip", "netns", "delete", undo["netns"], check=False)
    if undo["netns"] in t.state.namespaces:
        t.state.namespaces.remove(undo["netns"])
        t.state.save()


def _peer(t: Target) -> str:
    peers = sorted(n for n in t.state.nodes if n != t.node)
    if not peers:
        raise LabError(f"peer-state needs a second node in lab {t.state.id}")
    return peers[0]


def peer_state(t: Target) -> Undo:
    """The overlay's entry for one peer is gone: the neighbour (vxlan), the route (host-gw), or the BGP session
    bird learns it from (bgp: disabled, so bird withdraws the route)."""
    peer = _peer(t)
    if t.state.backend == "bgp":
        from pycni.cluster.lab_faults.bgp import disable_session

        return disable_session(t, peer)
    subnet = t.lab.node_subnet(peer)
    if subnet is None:
        raise LabError(f"peer {peer} has no subnet yet")
    if t.state.backend == "vxlan":
        dev = t.vxlan_device()
        gw = str(subnet.network_address)
        neigh = json.loads(t.run("ip", "-j", "neigh", "show", gw, "dev", dev) or "[]")
        t.run("ip", "neigh", "del", gw, "dev", dev)
        return {"neigh": [gw, dev, neigh[0]["lladdr"]] if neigh else None}
    routes = json.loads(t.run("ip", "-j", "route", "show", str(subnet), "proto", "124") or "[]")
    if not routes:
        raise LabError(f"node {t.node} has no route to {peer}'s {subnet}")
    r = routes[0]
    t.run("ip", "route", "del", str(subnet), "proto", "124")
    route = [str(subnet), "dev", r["dev"], "proto", "124"] + (["via", r["gateway"]] if r.get("gateway") else [])
    return {"route": route + (["onlink"] if "onlink" in r.get("flags", []) else [])}


def heal_peer_state(t: Target, undo: Undo) -> None:
    if undo.get("session"):
        from pycni.cluster.lab_faults.bgp import enable_session

        enable_session(t, undo)
    elif undo.get("neigh"):
        gw, dev, mac = undo["neigh"]
        t.run("ip", "neigh", "replace", gw, "lladdr", mac, "dev", dev, "nud", "permanent")
    elif undo.get("route"):
        t.lab.exec(t.node, ["ip", "route", "replace", *undo["route"]])


def vtep_mac(t: Target) -> Undo:
    dev = t.vxlan_device()
    old = str(t.link(dev)["address"])
    t.run("ip", "link", "set", dev, "address", "0a:58:de:ad:be:ef")
    return {"dev": dev, "mac": old}


def heal_vtep_mac(t: Target, undo: Undo) -> None:
    t.run("ip", "link", "set", undo["dev"], "address", undo["mac"])


def cidr_overlap(t: Target) -> Undo:
    """The node sits on a LAN numbered inside the pod network (a bridge: this kernel has no dummy links)."""
    cluster = IPv4Network(t.state.network)
    taken = {t.lab.node_subnet(n) for n in t.state.nodes}
    lan = next(s for s in reversed(list(cluster.subnets(new_prefix=24))) if s not in taken)
    t.run("ip", "link", "add", LAN, "type", "bridge")
    t.run("ip", "addr", "add", f"{lan[1]}/{lan.prefixlen}", "dev", LAN)
    t.run("ip", "link", "set", LAN, "up")
    return {"link": LAN}


def heal_cidr_overlap(t: Target, undo: Undo) -> None:
    t.lab.exec(t.node, ["ip", "link", "delete", undo["link"]])


def policy(t: Target) -> Undo:
    """The policy table is gone under the running agent, as after ``nft flush ruleset`` or a firewall reload."""
    t.run("nft", "delete table inet pycni_policy")
    return {}


def heal_policy(t: Target, undo: Undo) -> None:
    t.lab.stop_agent(t.node)  # a starting policy agent writes its whole table; healing then starts it again


def _underlay_address(t: Target, ip: str) -> None:
    from pycni.cluster.lab_state import UNDERLAY

    t.run("ip", "addr", "flush", "dev", "eth0")
    t.run("ip", "addr", "add", f"{ip}/{UNDERLAY.prefixlen}", "dev", "eth0")
    t.run("ip", "route", "replace", "default", "via", str(t.state.etcd_ip))


def node_ip(t: Target) -> Undo:
    """The node's underlay address changed under a running agent, whose lease keeps the old one."""
    from pycni.cluster.lab_state import node_ip as lab_node_ip

    node = t.state.nodes[t.node]
    _underlay_address(t, str(lab_node_ip(node.index) + 100))
    return {"ip": node.ip}


def heal_node_ip(t: Target, undo: Undo) -> None:
    _underlay_address(t, undo["ip"])


def mtu(t: Target) -> Undo:
    """The underlay's MTU shrinks on this node only: the overlay's 1450 no longer fits, peers still send it."""
    old = int(t.link("eth0")["mtu"])
    t.run("ip", "link", "set", "eth0", "mtu", str(old - 100))
    return {"mtu": old}


def heal_mtu(t: Target, undo: Undo) -> None:
    t.run("ip", "link", "set", "eth0", "mtu", str(undo["mtu"]))
    for node in t.state.nodes:  # path MTUs learned meanwhile outlive the fix by 10 minutes (doctor says so)
        t.lab.exec(node, ["ip", "route", "flush", "cache"])
