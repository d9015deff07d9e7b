"""``pycni doctor --explain``: the exact messages kubelet, containerd, CRI-O and podman print -> cause id."""

from __future__ import annotations

import pytest

from pycni.doctor.explain import explain
from pycni.doctor.run import CHECK_IDS

# (message as a user pastes it, cause id); wording from ../shared/notes/doctor.md section 1 (E1-E27).
MESSAGES = [
    ("cni plugin not initialized", "conf-missing"),
    ("no network config found in /etc/cni/net.d: cni plugin not initialized", "conf-missing"),
    ("cni config load failed: no network config found in /etc/cni/net.d: cni plugin not initialized: "
     "failed to load cni config", "conf-missing"),
    ("failed to load cni during init, please check CRI plugin status before setting up network for pods",
     "conf-missing"),
    ("docker: network plugin is not ready: cni config uninitialized", "conf-missing"),
    ("no CNI configuration file in /etc/cni/net.d/. Has your network provider started?", "conf-missing"),
    ("no net configurations found in /etc/cni/net.d", "conf-missing"),
    ('Error: error configuring network namespace for container 3f2a: CNI network "podman" not found',
     "conf-missing"),
    ('error adding pod default_web to CNI network "pycni": plugin type="bridge" name="pycni" failed (add): '
     'failed to set bridge addr: "cni0" already has an IP address different from 10.244.1.1/24',
     "bridge-stale-addr"),
    ('Container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin '
     "returns error: cni plugin not initialized", "conf-missing"),
    ('Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for sandbox "3c05": '
     'plugin type="bridge" name="pycni" failed (add): failed to find plugin "bridge" in path [/opt/cni/bin]',
     "plugin-missing"),
    ("Error validating CNI config file /etc/cni/net.d/87-podman.conflist: [failed to find plugin \"bridge\" in "
     "path [/usr/lib/cni]]", "plugin-missing"),
    ("fork/exec /opt/cni/bin/calico: exec format error", "plugin-not-exec"),
    ("fork/exec /opt/cni/bin/bridge: permission denied", "plugin-not-exec"),
    ('incompatible CNI versions; config is "1.0.0", plugin supports ["0.1.0" "0.2.0" "0.3.0" "0.3.1" "0.4.0"]',
     "version-skew"),
    ('failed to destroy network for sandbox "ab12": invalid version "": the version is empty', "version-skew"),
    ('plugin type="host-local" failed (add): failed to allocate for range 0: no IP addresses available in range '
     "set: 10.244.1.1-10.244.1.254", "ipam-exhausted"),
    ('failed to set bridge addr: "cni0" already has an IP address different from 10.244.0.1/24',
     "bridge-stale-addr"),
    ('failed to get network "cbr0" cached result: decoding version from network config: unexpected end of JSON '
     "input", "cache-corrupt"),
    ("failed to load flannel 'subnet.env' file: open /run/flannel/subnet.env: no such file or directory. Check "
     "the flannel pod log for this node.", "agent-down"),
    ('plugin type="flannel" failed (add): loadFlannelSubnetEnv failed: open /run/flannel/subnet.env: no such file '
     "or directory", "agent-down"),
    ("stat /var/lib/calico/nodename: no such file or directory: check that the calico/node container is running "
     "and has mounted /var/lib/calico/", "agent-down"),
    ('node "n1" pod cidr not assigned', "cidr-mismatch"),
    ("Failed to check br_netfilter: stat /proc/sys/net/bridge/bridge-nf-call-iptables: no such file or directory",
     "br-netfilter"),
    ("[ERROR FileContent--proc-sys-net-ipv4-ip_forward]: /proc/sys/net/ipv4/ip_forward contents are not set to 1",
     "ip-forward"),
    ("Kernel's RPF check is set to 'loose'. Calico requires net.ipv4.conf.all.rp_filter to be set to 0 or 1.",
     "rp-filter"),
    ("nf_conntrack: table full, dropping packet", "conntrack"),
    ("UDP: bad checksum. From 10.0.0.2:51234 to 10.0.0.3:8472 ulen 1458", "csum-offload"),
    ('failed to create network namespace for sandbox "ab12"', "netns-leak"),
    ('plugin type="netpol" name="pycni" failed (add): netpol: the policy agent at /run/pycni/policy.sock did not '
     "confirm the pod's policy: no answer within 10s", "agent-down"),
]


@pytest.mark.parametrize(("message", "cause"), MESSAGES)
def test_each_known_message_names_its_cause(message: str, cause: str) -> None:
    found = explain(message)
    assert found is not None, message
    assert found.id == cause
    assert found.fix


def test_unknown_messages_have_no_cause() -> None:
    assert explain("everything is fine") is None


def test_every_cause_id_is_a_check_id() -> None:
    from pycni.doctor.explain import CAUSES

    assert {cause.id for _, cause in CAUSES} <= set(CHECK_IDS)
