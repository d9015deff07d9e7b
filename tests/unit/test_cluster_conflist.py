"""What the agent writes for the runtime: the conflist and subnet.env (cluster/conflist.py). Pure."""

from __future__ import annotations

import json
from ipaddress import IPv4Network
from pathlib import Path

from pycni.cluster.conflist import CONFLIST_NAME, NodeNetwork, render_conflist, render_subnet_env, write_if_changed
from pycni.spec.config import conflist_from_bytes

NET = NodeNetwork(name="pycni", cluster=IPv4Network("10.244.0.0/16"), subnet=IPv4Network("10.244.3.0/24"),
                  mtu=1450, ipam_data_dir="/var/lib/lab/ipam")


def test_conflist_is_bridge_with_host_local_over_the_node_subnet_then_portmap() -> None:
    doc = json.loads(render_conflist(NET))
    bridge, portmap = doc["plugins"]
    assert doc["name"] == "pycni" and doc["cniVersion"] == "1.0.0"
    assert bridge["type"] == "bridge" and bridge["bridge"] == "cni0" and bridge["mtu"] == 1450
    assert bridge["isGateway"] is True and bridge["ipMasq"] is False
    assert bridge["ipam"] == {
        "type": "host-local",
        "ranges": [[{"subnet": "10.244.3.0/24", "gateway": "10.244.3.1"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "/var/lib/lab/ipam",
    }
    assert portmap == {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}
    parsed = conflist_from_bytes(render_conflist(NET).encode())  # valid for the runtime library
    assert [p.type for p in parsed.plugins] == ["bridge", "portmap"]


def test_conflist_sorts_first_and_says_whose_it_is() -> None:
    assert CONFLIST_NAME.startswith("00-") and "pycni" in CONFLIST_NAME
    assert CONFLIST_NAME.endswith(".conflist")


def test_subnet_env() -> None:
    text = render_subnet_env(IPv4Network("10.244.0.0/16"), IPv4Network("10.244.3.0/24"), 1450, "vxlan")
    assert text == (
        "PYCNI_NETWORK=10.244.0.0/16\nPYCNI_SUBNET=10.244.3.1/24\nPYCNI_MTU=1450\n"
        "PYCNI_IPMASQ=true\nPYCNI_BACKEND=vxlan\n"
    )


def test_write_if_changed_leaves_an_identical_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "d" / "f"
    assert write_if_changed(str(path), "a\n") is True
    before = path.stat().st_mtime_ns, path.stat().st_ino
    assert write_if_changed(str(path), "a\n") is False
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == before
    assert write_if_changed(str(path), "b\n") is True and path.read_text() == "b\n"
    assert [p.name for p in path.parent.iterdir()] == ["f"]


def test_policy_chains_netpol_last_with_the_agent_socket() -> None:
    net = NodeNetwork("pycni", IPv4Network("10.244.0.0/16"), IPv4Network("10.244.1.0/24"), 1450,
                      policy_socket="/run/pycni/policy.sock", policy_timeout=5.0)
    plugins = json.loads(render_conflist(net))["plugins"]
    assert [p["type"] for p in plugins] == ["bridge", "portmap", "netpol"]
    assert plugins[-1] == {"type": "netpol", "agentSocket": "/run/pycni/policy.sock", "timeoutSeconds": 5.0}
