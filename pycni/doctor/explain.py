"""``pycni doctor --explain "<message>"``: a runtime's error message -> the cause and its fix. Pure.

The table holds the exact wording of kubelet, containerd (go-cni, libcni),
CRI-O (ocicni), podman (containers/common), flannel-style agents and the
reference plugins, as collected in the project's notes; pycni emits the same
wording (``runtime/invoke.py``, ``runtime/libcni.py``, ``net/addrs.py``,
host-local). Messages nest (kubelet wraps containerd wraps libcni wraps the
plugin), so the most specific pattern is tried first: the table is ordered,
the first match wins. A cause id is a doctor check id where one exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["CAUSES", "Cause", "explain"]


@dataclass(frozen=True)
class Cause:
    id: str
    summary: str
    fix: str


_PATTERNS: tuple[tuple[str, Cause], ...] = (
    (r"no IP addresses available in range set",
     Cause("ipam-exhausted", "host-local has no free address left in the node's range (often leaked "
           "reservations after a crash)", "pycni doctor (see ipam-leak), then pycni gc <network>")),
    (r"requested IP address \S+ is not available in range set|range set \d+ overlaps with \d+",
     Cause("conf-missing", "the IPAM configuration is invalid or asks for an address already taken",
           "fix the ranges in the node's config; pycni doctor")),
    (r"already has an IP address different from",
     Cause("bridge-stale-addr", "the bridge carries an address from an old pod CIDR",
           "ip addr del <old address> dev cni0 (or ip link del cni0 when no pod runs)")),
    (r"failed to find plugin \S+ in path|Error validating CNI config file .*failed to find plugin",
     Cause("plugin-missing", "a plugin named by the config is not in the CNI bin dir",
           "pycni install --bin-dir /opt/cni/bin <type>")),
    (r"fork/exec \S+: (exec format error|permission denied|no such file or directory)|exec format error",
     Cause("plugin-not-exec", "the plugin file exists but cannot be executed (mode, noexec mount, wrong "
           "architecture, or a missing interpreter)", "pycni install --bin-dir /opt/cni/bin --force")),
    (r"incompatible CNI versions|unsupported CNI version|plugin supports \[",
     Cause("version-skew", "the config's cniVersion is one the plugin does not speak",
           "set \"cniVersion\" to one every plugin supports, or upgrade the plugins")),
    (r'invalid version "": the version is empty|the version is empty',
     Cause("version-skew", "the config (or a cached one) has no cniVersion",
           "add \"cniVersion\" to the config; pycni doctor (see cache-corrupt)")),
    (r"cached result: .*(unexpected end of JSON input|invalid character)|decoding version from network config",
     Cause("cache-corrupt", "a cached result file is empty or not JSON, so DEL cannot read it",
           "rm /var/lib/cni/results/<network>-<container>-<ifname>; pycni doctor")),
    (r"failed to load flannel 'subnet\.env' file|loadFlannelSubnetEnv failed|subnet\.env: no such file|"
     r"stat /var/lib/calico/nodename|check that the calico/node container is running|"
     r"policy agent|policy\.sock",
     Cause("agent-down", "the node's network agent is not running (its state file or socket is missing)",
           "start the node agent (pycni agent ...) and read its log")),
    (r"pod cidr not assigned",
     Cause("cidr-mismatch", "the node has no pod CIDR", "give the node a pod CIDR; pycni doctor")),
    (r"bridge-nf-call-iptables|br_netfilter",
     Cause("br-netfilter", "bridged pod traffic does not pass netfilter",
           "modprobe br_netfilter && sysctl -w net.bridge.bridge-nf-call-iptables=1")),
    (r"ip_forward contents are not set to 1|/proc/sys/net/ipv4/ip_forward",
     Cause("ip-forward", "IPv4 forwarding is off", "sysctl -w net.ipv4.ip_forward=1")),
    (r"RPF check|rp_filter",
     Cause("rp-filter", "reverse-path filtering is set in a way the network refuses",
           "sysctl -w net.ipv4.conf.all.rp_filter=2")),
    (r"nf_conntrack: table full",
     Cause("conntrack", "the conntrack table is full: new flows are dropped",
           "sysctl -w net.netfilter.nf_conntrack_max=<twice the current>")),
    (r"UDP: bad checksum",
     Cause("csum-offload", "the VXLAN checksum-offload kernel bug drops overlay packets",
           "ethtool -K pycni.1 tx-checksum-ip-generic off")),
    (r"failed to (Statfs|open netns|get netns|find netns)|netns .*(does not exist|no such file)|"
     r"failed to (create|remove) network namespace",
     Cause("netns-leak", "the pod's network namespace is gone (or could not be made) while the runtime still "
           "refers to it", "pycni gc <network>; ip netns list for leftovers")),
    (r"no network config found in|no net configurations found|no CNI configuration file in|"
     r"cni config uninitialized|cni plugin not initialized|network plugin is not ready|Missing CNI default network|"
     r"failed to load cni during init|no net configuration with name|CNI network \"?[\w.-]+\"? not found",
     Cause("conf-missing", "the runtime finds no (valid) network config in its conf dir",
           "start the node agent, which writes /etc/cni/net.d/00-pycni-cluster.conflist; pycni doctor")),
    (r"cni config load failed|failed to load cni config|error parsing configuration",
     Cause("conf-missing", "a file in the conf dir does not parse", "pycni doctor (see conf-missing)")),
    (r"timed out|deadline exceeded|context deadline",
     Cause("synthetic-pod", "a plugin did not finish in time", "pycni doctor (see agent-down and policy)")),
)

CAUSES: tuple[tuple[re.Pattern[str], Cause], ...] = tuple((re.compile(p, re.IGNORECASE), c) for p, c in _PATTERNS)


def explain(message: str) -> Cause | None:
    """The cause of the first pattern that matches ``message``; None when none does."""
    for pattern, cause in CAUSES:
        if pattern.search(message):
            return cause
    return None
