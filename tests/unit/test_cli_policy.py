"""``pycni policy explain|log`` through main's parser, with MemoryKV injected."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from pycni.cli.main import build_parser
from pycni.cli.policy import PolicyCliError, cmd_policy, follow, parse_port
from pycni.cluster.kv import Put
from pycni.cluster.lease import lease_value
from pycni.policy.compile import pod_chain_name
from pycni.policy.endpoints import Endpoint, encode, endpoint_key
from pycni.policy.model import (
    ContainerPort,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Pod,
    PolicyPeer,
    PolicyPort,
    PolicyRule,
    labels_of,
)
from pycni.policy.store import ObjectStore
from pycni.testing.kv import MemoryKV

PREFIX = "/pycni"
ALLOW_A = NetworkPolicy("x", "allow-a", LabelSelector(labels_of({"pod": "b"})), frozenset({"Ingress"}), ingress=(
    PolicyRule((PolicyPort("TCP", 80),), (PolicyPeer(LabelSelector(labels_of({"pod": "a"}))),)),))


@pytest.fixture
def kv() -> MemoryKV:
    kv = MemoryKV()
    ObjectStore(kv, PREFIX).apply([
        Namespace("x"),
        Pod("x", "a", labels_of({"pod": "a"})),
        Pod("x", "b", labels_of({"pod": "b"}), (ContainerPort(8080, "TCP", "http"),)),
        Pod("x", "c", labels_of({"pod": "c"})),
        Pod("x", "idle"),
        ALLOW_A,
    ])
    puts = [Put(endpoint_key(PREFIX, e), encode(e)) for e in (
        Endpoint("x", "a", "n1", ("10.244.1.10",), "c1", "eth0"),
        Endpoint("x", "b", "n2", ("10.244.2.10",), "c2", "eth0"),
        Endpoint("x", "c", "n1", ("10.244.1.11",), "c3", "eth0"),
    )]
    puts += [Put(f"{PREFIX}/subnets/10.244.{i}.0-24",
                 lease_value(f"n{i}", IPv4Address(f"192.168.50.1{i}"), "vxlan", {})) for i in (1, 2)]
    kv.txn([], puts)
    return kv


def run(kv: MemoryKV, *argv: str) -> tuple[int, str, str]:
    args = build_parser().parse_args(["policy", *argv])
    out, err = io.StringIO(), io.StringIO()
    code = cmd_policy(args, {}, kv=kv, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_explain_an_allowed_connection_names_the_rule_and_the_enforcing_nodes(kv: MemoryKV) -> None:
    code, out, err = run(kv, "explain", "--from", "x/a", "--to", "x/b", "--port", "80/TCP")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "x/a (10.244.1.10) -> x/b (10.244.2.10) TCP/80: allowed"
    assert "  isolated by x/allow-a" in lines
    assert any(line.startswith("  allowed by x/allow-a ingress[0] from[0] ports[0]") for line in lines)
    assert lines[-1] == "enforced by: egress of x/a on node n1, ingress of x/b on node n2"


def test_explain_a_deny_gives_the_nearest_miss(kv: MemoryKV) -> None:
    code, out, _ = run(kv, "explain", "--from", "x/c", "--to", "x/b", "--port", "80")
    assert code == 0
    assert out.splitlines()[0].endswith("TCP/80: denied")
    assert "  nearest misses:" in out.splitlines()
    assert "the source x/c has pod=c" in out


def test_explain_from_a_node_address_and_a_named_port(kv: MemoryKV) -> None:
    code, out, _ = run(kv, "explain", "--from", "10.244.2.1", "--to", "x/b", "--port", "http/tcp")
    assert code == 0
    assert out.splitlines()[0] == "10.244.2.1 (node n2) -> x/b (10.244.2.10) TCP/8080: allowed"
    assert "from its own node n2" in out
    assert out.splitlines()[-1] == "enforced by: no node (nothing here is checked)"
    code, out, _ = run(kv, "explain", "--from", "192.168.50.11", "--to", "x/b", "--port", "8080")
    assert out.splitlines()[0].endswith(": denied")


def test_explain_json(kv: MemoryKV) -> None:
    code, out, _ = run(kv, "explain", "--from", "x/c", "--to", "x/b", "--port", "80/TCP", "-o", "json")
    doc = json.loads(out)
    assert (code, doc["allowed"], doc["port"], doc["protocol"]) == (0, False, 80, "TCP")
    assert doc["from"] == {"kind": "pod", "name": "x/c", "ip": "10.244.1.11", "node": "n1", "labels": {"pod": "c"}}
    assert doc["egress"]["status"] == "not-isolated"
    ingress = doc["ingress"]
    assert (ingress["status"], ingress["enforcedOn"], ingress["isolatedBy"]) == ("denied", "n2", ["x/allow-a"])
    assert ingress["nearestMisses"][0]["policy"] == "x/allow-a"
    assert ingress["nearestMisses"][0]["missed"] == "peer"
    assert ingress["nftChain"] == pod_chain_name("x/b", "Ingress") and doc["egress"]["nftChain"] is None


@pytest.mark.parametrize(("argv", "message"), [
    (("--from", "x/nope", "--to", "x/b"),
     "pycni policy: pod x/nope not found: no Pod object and no endpoint of that name\n"),
    (("--from", "x/idle", "--to", "x/b"),
     "pycni policy: pod x/idle has no endpoint yet (not attached to any node): it has no address\n"),
    (("--from", "nonsense", "--to", "x/b"), "pycni policy: 'nonsense' is neither an IP address nor NAMESPACE/POD\n"),
])
def test_explain_refuses_in_one_line(kv: MemoryKV, argv: tuple[str, ...], message: str) -> None:
    assert run(kv, "explain", *argv, "--port", "80/TCP") == (1, "", message)


def test_explain_unknown_named_port(kv: MemoryKV) -> None:
    assert run(kv, "explain", "--from", "x/a", "--to", "x/b", "--port", "dns/UDP") == (
        1, "", "pycni policy: --port: x/b has no UDP port named 'dns'\n")


def test_parse_port() -> None:
    assert parse_port("80/tcp") == (80, "TCP")
    assert parse_port("53/UDP") == (53, "UDP")
    assert parse_port("http") == ("http", "TCP")
    for bad in ("70000/TCP", "80/ICMP", "/TCP"):
        with pytest.raises(PolicyCliError):
            parse_port(bad)


def test_log_prints_the_rotated_file_then_the_current_one(tmp_path: Path, kv: MemoryKV) -> None:
    (tmp_path / "policy-denied.log.1").write_text('{"n": 1}\n')
    (tmp_path / "policy-denied.log").write_text('{"n": 2}\n')
    assert run(kv, "log", "--node-run-dir", str(tmp_path)) == (0, '{"n": 1}\n{"n": 2}\n', "")
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(kv, "log", "--node-run-dir", str(empty))
    assert code == 1 and err.startswith("pycni policy: no denied-connection log at ")


def test_follow_waits_for_the_file_and_survives_rotation(tmp_path: Path) -> None:
    path = str(tmp_path / "policy-denied.log")
    out = io.StringIO()
    stop = threading.Event()
    thread = threading.Thread(target=follow, args=(path, out, stop, 0.01))
    thread.start()
    try:
        time.sleep(0.05)
        with open(path, "a") as f:
            f.write('{"n": 1}\n{"n": 2')
        time.sleep(0.05)
        with open(path, "a") as f:
            f.write('}\n{"n": 3}\n')
        os.rename(path, path + ".1")
        with open(path, "a") as f:
            f.write('{"n": 4}\n')
        deadline = time.monotonic() + 5
        while out.getvalue().count("\n") < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join(5)
    assert out.getvalue() == '{"n": 1}\n{"n": 2}\n{"n": 3}\n{"n": 4}\n'


def test_log_of_a_lab_node(tmp_path: Path) -> None:
    from pycni.cluster.lab_state import LabState, NodeState

    state = LabState("lab1", str(tmp_path), "vxlan", nodes={"n1": NodeState("n1", 1, "lab1-n1", "192.168.100.11")})
    state.save()
    run_dir = Path(state.node_dir("n1")) / "run"
    run_dir.mkdir(parents=True)
    (run_dir / "policy-denied.log").write_text('{"n": 1}\n')
    environ = {"PYCNI_LAB_ROOT": str(tmp_path)}

    def log(*argv: str) -> tuple[int, str, str]:
        args = build_parser().parse_args(["policy", "log", *argv])
        out, err = io.StringIO(), io.StringIO()
        return cmd_policy(args, environ, out=out, err=err), out.getvalue(), err.getvalue()

    assert log("--node", "n1") == (0, '{"n": 1}\n', "")
    assert log("--node", "n9") == (1, "", "pycni policy: --node: lab lab1 has no node 'n9' (n1)\n")
    environ["PYCNI_LAB_ROOT"] = str(tmp_path / "nothing")
    assert log("--node", "n1") == (1, "", "pycni policy: --node: no lab is up\n")
