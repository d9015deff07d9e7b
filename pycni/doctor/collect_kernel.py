"""Collect the kernel side of a node (its current network namespace): links, routes, the overlay's
FDB and neighbours, sysctls, conntrack counters, and the firewall's base chains.

Reads only, through pycni.net (and /proc); each function raises on what it
cannot read and ``collect`` records the error against that part of the
snapshot. Run inside the node's namespace (``ip netns exec``) for a lab node.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network
from typing import Literal

from pycni.doctor.snapshot import FirewallView, LinkView, NodeView, PeerEntries, RouteView

__all__ = ["cmdline", "collect_firewall", "collect_node", "kernel_log", "netns_inodes_in_use", "pid_alive",
           "rule_text", "sysctl_keys"]

_CHAIN_HOOKS = ("forward", "input")


def sysctl_keys(devices: Iterable[str]) -> list[str]:
    keys = ["net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables", "net.ipv4.conf.all.rp_filter",
            "net.ipv6.conf.all.forwarding"]
    return keys + [f"net.ipv4.conf.{dev}.rp_filter" for dev in devices]


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def _sysctl(key: str) -> str | None:
    parts = key.split(".")
    # Interface names may hold dots (pycni.1): net.ipv4.conf.<dev>.<name>
    if key.startswith("net.ipv4.conf.") and len(parts) > 5:
        parts = [*parts[:4], ".".join(parts[4:-1]), parts[-1]]
    return _read("/proc/sys/" + "/".join(parts))


def collect_node(vxlan_device: str | None = None) -> NodeView:
    """The node's links, routes, sysctls and counters; the overlay's entries of ``vxlan_device`` (default: the
    agent's ``pycni.<VNI>`` device found among the links, else an IPv6-only node's ``pycni6.<VNI>``, so this needs
    nothing from the datastore). Global IPv6 addresses and IPv6 routes are collected after the IPv4 ones."""
    from pycni.net import addrs, links, routes

    infos = links.list_links()
    if vxlan_device is None:
        vxlan_device = next((i.name for i in infos if i.kind == "vxlan" and i.name.startswith("pycni.")), None) or (
            next((i.name for i in infos if i.kind == "vxlan" and i.name.startswith("pycni6.")), None))
    names = {info.index: info.name for info in infos}
    views = []
    for info in infos:
        addresses = tuple(a for a in addrs.list_addresses(info.name, 4) if isinstance(a, IPv4Interface))
        addresses6 = tuple(a for a in addrs.list_addresses(info.name, 6)
                           if isinstance(a, IPv6Interface) and not a.ip.is_link_local and not a.ip.is_loopback)
        views.append(LinkView(name=info.name, kind=info.kind, mtu=info.mtu, mac=info.mac.lower(), up=info.up,
                              addresses=addresses, addresses6=addresses6,
                              master=names.get(info.master) if info.master else None))
    route_views = tuple(
        RouteView(dst=r.dst, gw=r.gw if isinstance(r.gw, IPv4Address) else None, dev=r.dev, protocol=r.protocol)
        for r in routes.list_routes(family=4) if isinstance(r.dst, IPv4Network)) + tuple(
        RouteView(dst=r.dst, gw=r.gw if isinstance(r.gw, IPv6Address) else None, dev=r.dev, protocol=r.protocol)
        for r in routes.list_routes(family=6) if isinstance(r.dst, IPv6Network) and not r.dst.is_link_local)
    entries = None
    if vxlan_device is not None and vxlan_device in names.values():
        from pycni.net import vxlan

        family: Literal[4, 6] = 6 if vxlan_device.startswith("pycni6.") else 4
        entries = PeerEntries(
            fdb=frozenset((e.mac, e.dst) for e in vxlan.list_fdb(vxlan_device) if e.dst is not None),
            neighbours=frozenset((n.ip, n.mac) for n in vxlan.list_neighbours(vxlan_device, family)
                                 if n.permanent))
    devices = [v.name for v in views if v.kind in ("bridge", "vxlan") or v.addresses]
    sysctls = {key: _sysctl(key) for key in sysctl_keys(devices)}
    count = _read("/proc/sys/net/netfilter/nf_conntrack_count")
    limit = _read("/proc/sys/net/netfilter/nf_conntrack_max")
    conntrack = (int(count), int(limit)) if count and limit and count.isdigit() and limit.isdigit() else None
    if vxlan_device is not None:
        views = [replace(v, tx_checksum=_tx_checksum(v.name)) if v.name == vxlan_device else v for v in views]
    managed = _nm_managed()
    views = [replace(v, managed_by="NetworkManager") if v.name in managed else v for v in views]
    return NodeView(links=tuple(views), routes=route_views, peer_entries=entries, sysctls=sysctls,
                    conntrack=conntrack, kernel_log=kernel_log())


# Kernel messages that name a fault doctor knows (conntrack full; the VXLAN checksum-offload bug).
_KERNEL_SIGNS = ("nf_conntrack: table full", "UDP: bad checksum")


def _tool(*cmd: str) -> str:
    """A tool's stdout, or "" when it is not installed or fails (these are optional extras)."""
    path = shutil.which(cmd[0])
    if path is None:
        return ""
    try:
        done = subprocess.run([path, *cmd[1:]], capture_output=True, text=True, timeout=3, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout if done.returncode == 0 else ""


def kernel_log(limit: int = 5) -> tuple[str, ...]:
    """The last few kernel messages about conntrack being full or bad UDP checksums (the host's log)."""
    lines = [line for line in _tool("dmesg").splitlines() if any(sign in line for sign in _KERNEL_SIGNS)]
    return tuple(lines[-limit:])


def _tx_checksum(device: str) -> bool | None:
    for line in _tool("ethtool", "-k", device).splitlines():
        if line.strip().startswith("tx-checksum-ip-generic:"):
            return line.split(":", 1)[1].strip().startswith("on")
    return None


def _nm_managed() -> set[str]:
    """Devices NetworkManager manages (``nmcli -t -f DEVICE,STATE device``); empty without NetworkManager."""
    managed = set()
    for line in _tool("nmcli", "-t", "-f", "DEVICE,STATE", "device").splitlines():
        device, _, state = line.partition(":")
        if device and state and state != "unmanaged":
            managed.add(device)
    return managed


def _words(node: object) -> list[str]:
    """An nft JSON expression as the words an operator would read (``ip saddr 10.244.0.0/16 accept``)."""
    if isinstance(node, dict):
        if set(node) == {"prefix"} and isinstance(node["prefix"], dict):
            return [f"{node['prefix'].get('addr')}/{node['prefix'].get('len')}"]
        words: list[str] = []
        for key, value in node.items():
            if key in ("op", "family", "table", "chain", "handle", "comment"):
                continue
            words += [key] if value is None else _words(value)
        return words
    if isinstance(node, list):
        return [w for item in node for w in _words(item)]
    return [str(node)]


def rule_text(rule: Mapping[str, object]) -> str:
    return " ".join(_words(rule.get("expr", [])))


def _legacy_rules() -> tuple[str, ...]:
    """``iptables-legacy-save`` as policy (``-P CHAIN POLICY``) and rule (``-A ...``) lines."""
    tool = shutil.which("iptables-legacy-save")
    if tool is None:
        return ()
    out = subprocess.run([tool], capture_output=True, text=True, timeout=10, check=False).stdout
    lines = []
    for line in out.splitlines():
        if line.startswith(":"):
            chain, policy = [*line[1:].split(), "", ""][:2]
            if policy in ("DROP", "ACCEPT"):
                lines.append(f"-P {chain} {policy}")
        elif line.startswith("-A"):
            lines.append(line)
    return tuple(lines)


def collect_firewall() -> FirewallView:
    from pycni.net.firewall import nft

    chains = []
    for item in nft.list_json("chains"):
        chain = item.get("chain")
        if not isinstance(chain, dict) or chain.get("hook") not in _CHAIN_HOOKS:
            continue
        family, table, name = str(chain["family"]), str(chain["table"]), str(chain["name"])
        rules = tuple(rule_text(r) for r in nft.rules(family, table, name))
        chains.append((family, table, name, str(chain["hook"]), str(chain.get("policy", "accept")), rules))
    names = _read("/proc/net/ip_tables_names") or ""
    legacy_tables = tuple(n for n in names.split() if n)
    legacy = _legacy_rules() if legacy_tables else ()
    return FirewallView(nft_chains=tuple(chains), legacy_tables=legacy_tables, legacy_rules=legacy)


def pid_alive(pid: int) -> bool:
    """True for a live process that is not a zombie."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return False
    try:
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except IndexError:
        return False


def cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def netns_inodes_in_use() -> set[int]:
    """Inodes of every network namespace some process lives in."""
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            found.add(os.stat(f"/proc/{pid}/ns/net").st_ino)
        except OSError:
            continue
    return found
