"""What the agent writes (conflist, subnet.env), its masquerade rules and metrics, the lab's state: pure parts."""

from __future__ import annotations

import json
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from pycni.cluster.agent_metrics import AgentMetrics
from pycni.cluster.conflist import CONFLIST_NAME, NodeNetwork, render_conflist, render_subnet_env, write_if_changed
from pycni.cluster.lab_state import LabState, NodeState, PodState, check_name, node_ip
from pycni.cluster.masquerade import masquerade_commands
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


def test_masquerade_transaction_recreates_the_table_with_three_rules() -> None:
    commands = masquerade_commands(IPv4Network("10.244.0.0/16"))
    verbs = [next(iter(c)) for c in commands]
    assert verbs[:3] == ["add", "delete", "add"]
    assert all("table" in c[v] for c, v in zip(commands[:3], verbs[:3], strict=True))
    rules = [c["add"]["rule"] for c in commands if "rule" in c.get("add", {})]
    assert len(rules) == 3
    assert rules[0]["expr"][1]["match"]["right"] == {"prefix": {"addr": "10.244.0.0", "len": 16}}
    assert rules[0]["expr"][1]["match"]["op"] == "=="
    assert rules[2]["expr"][-1] == {"masquerade": None}
    chain = next(c["add"]["chain"] for c in commands if "chain" in c.get("add", {}))
    assert chain["hook"] == "postrouting" and chain["type"] == "nat"


def test_metrics_render() -> None:
    metrics = AgentMetrics()
    metrics.inc("pycni_agent_kernel_changes_total", 3, action="added")
    metrics.set("pycni_agent_peers", 2)
    text = metrics.render()
    assert 'pycni_agent_kernel_changes_total{action="added"} 3' in text
    assert "pycni_agent_peers 2" in text
    assert "# TYPE pycni_agent_lease_valid gauge" in text and "pycni_agent_lease_valid 0" in text


def test_lab_state_round_trip_and_names(tmp_path: Path) -> None:
    state = LabState(id="pl0a0b0c", root=str(tmp_path), backend="vxlan")
    state.nodes["n1"] = NodeState(name="n1", index=1, netns="pl0a0b0c-n1", ip=str(node_ip(1)), agent_pid=42)
    state.pods["web"] = PodState(name="web", node="n1", netns=state.pod_netns("web"), ip="10.244.1.2")
    state.namespaces += ["pl0a0b0c-ul", "pl0a0b0c-n1"]
    state.save()
    loaded = LabState.load(str(tmp_path), "pl0a0b0c")
    assert loaded == state
    assert LabState.list_ids(str(tmp_path)) == ["pl0a0b0c"]
    assert loaded.netns_of("web") == "pl0a0b0c-p-web"
    assert loaded.netns_of("n1") == "pl0a0b0c-n1"
    assert loaded.netns_of("outside") == "pl0a0b0c-ext"
    assert str(node_ip(2)) == "192.168.77.12"
    with pytest.raises(KeyError):
        loaded.netns_of("nope")
    with pytest.raises(ValueError):
        check_name("Bad_Name", "pod")
