"""Checks of the node's kernel settings and of firewalls that pycni does not own. Pure.

A firewall rule is foreign when its table is not one pycni's agent or
plugins make (``OWN_TABLES``): pycni's own drops (NetworkPolicy) are
intended. A foreign ``forward`` chain drops pod traffic when its policy is
drop, or it has a drop rule, with no accept naming the cluster network
before it.
"""

from __future__ import annotations

from collections.abc import Iterator

from pycni.doctor.result import CheckResult, fail, passed, skip, warn
from pycni.doctor.snapshot import Snapshot

__all__ = [
    "OWN_TABLES",
    "br_netfilter",
    "conntrack",
    "csum_offload",
    "forward_drop",
    "ip_forward",
    "iptables_mixed",
    "link_managers",
    "rp_filter",
    "vxlan_port",
]

OWN_TABLES = frozenset({
    ("inet", "pycni_policy"), ("inet", "pycni_agent"), ("inet", "cni_plugins_masquerade"),
    ("inet", "pycni-portmap"), ("inet", "pycni-firewall"),
})
IP_FORWARD = "net.ipv4.ip_forward"
IP6_FORWARD = "net.ipv6.conf.all.forwarding"  # what an IPv6-only node forwards with
BRIDGE_NF = "net.bridge.bridge-nf-call-iptables"


def _sysctl(snap: Snapshot, cid: str, key: str) -> tuple[str | None, CheckResult | None]:
    if snap.node is None:
        return None, skip(cid, f"cannot read sysctls: {snap.errors.get('node', 'unknown error')}")
    return snap.node.sysctls.get(key), None


def ip_forward(snap: Snapshot) -> CheckResult:
    cid = "ip-forward"
    if snap.store is not None and snap.store.network is not None and snap.store.network.version == 6:
        value, skipped = _sysctl(snap, cid, IP6_FORWARD)
        if skipped or value == "1":
            return skipped or passed(cid, f"{IP6_FORWARD} = 1 (an IPv6-only cluster)")
        return fail(cid, "IPv6 forwarding is off: pods cannot reach other nodes or the outside",
                    [f"{IP6_FORWARD} = {value}"], f"sysctl -w {IP6_FORWARD}=1 (and persist it in /etc/sysctl.d/)")
    value, skipped = _sysctl(snap, cid, IP_FORWARD)
    if skipped:
        return skipped
    if value != "1":
        return fail(cid, "IPv4 forwarding is off: pods cannot reach other nodes or the outside",
                    [f"/proc/sys/net/ipv4/ip_forward = {value}"],
                    "sysctl -w net.ipv4.ip_forward=1 (and persist it in /etc/sysctl.d/)")
    return passed(cid, "net.ipv4.ip_forward = 1")


def _policy_on(snap: Snapshot) -> bool:
    return snap.winner is not None and "netpol" in snap.winner.types


def br_netfilter(snap: Snapshot) -> CheckResult:
    cid = "br-netfilter"
    value, skipped = _sysctl(snap, cid, BRIDGE_NF)
    if skipped:
        return skipped
    if value == "1":
        return passed(cid, f"{BRIDGE_NF} = 1: bridged pod traffic passes netfilter")
    found = "missing (br_netfilter not loaded)" if value is None else f"= {value}"
    evidence = [f"/proc/sys/net/bridge/bridge-nf-call-iptables {found}"]
    fix = "modprobe br_netfilter && sysctl -w net.bridge.bridge-nf-call-iptables=1"
    if _policy_on(snap):
        return fail(cid, "NetworkPolicy is on but traffic between pods of this node bypasses it", evidence, fix)
    return warn(cid, "traffic between pods of this node bypasses netfilter (services, policy)", evidence, fix)


def rp_filter(snap: Snapshot) -> CheckResult:
    cid = "rp-filter"
    if snap.node is None:
        return skip(cid, f"cannot read sysctls: {snap.errors.get('node', 'unknown error')}")
    sysctls = snap.node.sysctls
    strict = []
    for dev in filter(None, (snap.vxlan_device, snap.options.bridge, snap.underlay)):
        values = [sysctls.get(f"net.ipv4.conf.{name}.rp_filter") for name in ("all", dev)]
        effective = max((int(v) for v in values if v is not None and v.isdigit()), default=0)
        if effective == 1:
            strict.append(f"{dev}: effective rp_filter 1 (strict; all={values[0]}, {dev}={values[1]})")
    if strict:
        return warn(cid, "strict reverse-path filtering on pod paths drops asymmetric traffic", strict,
                    "sysctl -w net.ipv4.conf.all.rp_filter=2 (loose), and 2 or 0 on the devices listed")
    return passed(cid, "no strict reverse-path filtering on pod paths")


def _foreign_chains(snap: Snapshot, hook: str) -> Iterator[tuple[str, str, tuple[str, ...]]]:
    """(chain label, policy, rules) of each foreign base chain on ``hook``."""
    assert snap.firewall is not None
    for family, table, chain, chain_hook, policy, rules in snap.firewall.nft_chains:
        if chain_hook == hook and (family, table) not in OWN_TABLES:
            yield f"{family} {table} {chain}", policy, rules


def _drops(rules: tuple[str, ...], policy: str, accepted: tuple[str, ...]) -> list[str]:
    """Rules (or the policy) that drop before any accept naming one of ``accepted``."""
    found: list[str] = []
    for rule in rules:
        words = rule.split()
        if "accept" in words and any(a in rule for a in accepted):
            return found
        if "drop" in words or "reject" in words:
            found.append(rule)
    if policy == "drop":
        found.append("policy drop")
    return found


def _legacy_forward_drops(snap: Snapshot) -> list[str]:
    assert snap.firewall is not None
    return [line for line in snap.firewall.legacy_rules
            if line.startswith(("-P FORWARD DROP", "-A FORWARD")) and line.split()[-1] in ("DROP", "REJECT")]


def forward_drop(snap: Snapshot) -> CheckResult:
    cid = "forward-drop"
    if snap.firewall is None:
        return skip(cid, f"cannot list the firewall: {snap.errors.get('firewall', 'unknown error')}")
    cluster = [str(snap.store.network)] if snap.store is not None and snap.store.network is not None else []
    if snap.winner is not None:
        cluster += [str(r) for r in snap.winner.ranges]
    found = []
    for label, policy, rules in _foreign_chains(snap, "forward"):
        found += [f"{label}: {rule}" for rule in _drops(rules, policy, tuple(cluster))]
    legacy = [f"iptables-legacy: {line}" for line in _legacy_forward_drops(snap)]
    if found or legacy:
        network = cluster[0] if cluster else "<cluster network>"
        first = (found + legacy)[0].split(":")[0]
        fix = ("iptables-legacy -P FORWARD ACCEPT; iptables-legacy -F FORWARD" if not found else
               f"nft insert rule {first} ip saddr {network} accept; nft insert rule {first} ip daddr {network} "
               "accept (or remove the drop)")
        return fail(cid, "a firewall pycni does not own drops forwarded pod traffic", found + legacy, fix)
    return passed(cid, "no foreign firewall rule drops forwarded traffic")


def iptables_mixed(snap: Snapshot) -> CheckResult:
    cid = "iptables-mixed"
    fw = snap.firewall
    if fw is None:
        return skip(cid, f"cannot list the firewall: {snap.errors.get('firewall', 'unknown error')}")
    if not fw.legacy_tables:
        return passed(cid, "iptables-legacy is not in use in this namespace")
    rules = [line for line in fw.legacy_rules if line.startswith("-A") or " DROP" in line]
    evidence = [f"/proc/net/ip_tables_names: {', '.join(fw.legacy_tables)}", *rules[:10]]
    if not fw.nft_chains:
        return passed(cid, "only iptables-legacy is in use", evidence)
    if rules:
        return fail(cid, "iptables-legacy rules sit beside nftables: both filter every packet, and tools see "
                    "only one of them", evidence,
                    "use one backend: move the rules to nftables (iptables-nft), then iptables-legacy -F; "
                    "iptables-legacy -P FORWARD ACCEPT")
    # Empty legacy tables stay once anything touched them (they go only with the namespace): harmless.
    return passed(cid, "iptables-legacy tables exist but hold no rules", evidence)


def vxlan_port(snap: Snapshot) -> CheckResult:
    cid = "vxlan-port"
    store = snap.store
    if store is None or store.backend_type is None:
        return skip(cid, "backend not known (see datastore)")
    if store.backend_type != "vxlan":
        return passed(cid, f"backend {store.backend_type} has no overlay port")
    if snap.firewall is None:
        return skip(cid, f"cannot list the firewall: {snap.errors.get('firewall', 'unknown error')}")
    port = str(store.vxlan_port or 8472)
    found: list[str] = []
    for label, policy, rules in _foreign_chains(snap, "input"):
        for rule in rules:
            words = rule.split()
            if ("drop" in words or "reject" in words) and port in words and "udp" in words:
                found.append(f"{label}: {rule}")
            elif "accept" in words and port in words:
                break
        else:
            if policy == "drop":
                found.append(f"{label}: policy drop without an accept for udp {port}")
    found += [f"iptables-legacy: {line}" for line in snap.firewall.legacy_rules
              if line.startswith("-A INPUT") and f"--dport {port}" in line and line.split()[-1] in ("DROP", "REJECT")]
    if found:
        return fail(cid, f"a firewall drops the overlay's UDP port {port}: peers' packets never arrive", found,
                    f"allow udp/{port} from the other nodes (or remove the rule)")
    return passed(cid, f"nothing drops udp/{port} (VXLAN)")


def conntrack(snap: Snapshot) -> CheckResult:
    cid = "conntrack"
    if snap.node is None or snap.node.conntrack is None:
        return skip(cid, "conntrack counters not readable")
    count, limit = snap.node.conntrack
    full = [line for line in snap.node.kernel_log if "table full" in line]
    if limit and (count >= 0.9 * limit or full):
        return warn(cid, f"conntrack table {count}/{limit} ({100 * count // limit}%): new flows get dropped",
                    [f"nf_conntrack_count {count}, nf_conntrack_max {limit}", *full[:3]],
                    f"sysctl -w net.netfilter.nf_conntrack_max={2 * limit}")
    return passed(cid, f"conntrack table {count}/{limit}")


def csum_offload(snap: Snapshot) -> CheckResult:
    cid = "csum-offload"
    dev = snap.vxlan_device
    if dev is None:
        return passed(cid, "no VXLAN device")
    if snap.node is None:
        return skip(cid, "cannot list links")
    port = snap.store.vxlan_port if snap.store is not None and snap.store.vxlan_port else 8472
    bad = [line for line in snap.node.kernel_log if "bad checksum" in line and f":{port}" in line]
    link = snap.node.link(dev)
    if bad:
        on = link is not None and link.tx_checksum is True
        return warn(cid, f"the kernel drops VXLAN packets with bad UDP checksums{' (offload on)' if on else ''}",
                    bad[:3], f"ethtool -K {dev} tx-checksum-ip-generic off")
    return passed(cid, "no bad VXLAN checksums logged")


def link_managers(snap: Snapshot) -> CheckResult:
    cid = "link-managers"
    if snap.node is None:
        return skip(cid, "cannot list links")
    managed = [f"{link.name}: managed by {link.managed_by}" for link in snap.node.links if link.managed_by]
    if managed:
        return warn(cid, "a network manager manages pycni's links (it may remove their addresses and routes)",
                    managed, "NetworkManager: unmanaged-devices=interface-name:cni0;interface-name:veth*;"
                    "interface-name:pycni.* in /etc/NetworkManager/conf.d/pycni.conf")
    return passed(cid, "no network manager manages pycni's links")
