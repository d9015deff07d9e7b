"""``pycni policy explain`` and ``pycni apply --dry-run`` as a user runs them (subprocesses, real etcd)."""

from __future__ import annotations

import json
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path

from pycni.cluster.etcd import EtcdKV
from pycni.cluster.kv import Put
from pycni.cluster.lease import lease_value
from pycni.policy.endpoints import Endpoint, encode, endpoint_key
from tests.cluster_etcd.etcd_server import EtcdServer
from tests.cluster_etcd.test_cli_cluster import ok, one_line_error, pycni

OBJECTS = """\
apiVersion: v1
kind: Namespace
metadata: {name: x}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {pod: a}}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: x, labels: {pod: b}}
spec:
  containers:
  - {name: web, image: nginx, ports: [{name: http, containerPort: 8080}]}
"""

ONLY_A = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-a, namespace: x}
spec:
  podSelector: {matchLabels: {pod: b}}
  ingress:
  - from: [{podSelector: {matchLabels: {pod: a}}}]
    ports: [{port: http}]
"""


def test_explain_and_dry_run(etcd_server: EtcdServer, prefix: str, tmp_path: Path,
                             open_kv: Callable[..., EtcdKV]) -> None:
    e = etcd_server.endpoint
    flags = ("--etcd-endpoints", e, "--etcd-prefix", prefix)
    (tmp_path / "objects.yaml").write_text(OBJECTS)
    (tmp_path / "only-a.yaml").write_text(ONLY_A)
    ok(pycni("apply", "-f", str(tmp_path / "objects.yaml"), *flags))
    kv = open_kv(e)
    endpoints = [Endpoint("x", "a", "n1", ("10.244.1.10",), "c1", "eth0"),
                 Endpoint("x", "b", "n2", ("10.244.2.10",), "c2", "eth0"),
                 Endpoint("x", "c", "n2", ("10.244.2.11",), "c3", "eth0")]  # no Pod object: no labels
    puts = [Put(endpoint_key(prefix, ep), encode(ep)) for ep in endpoints]
    puts += [Put(f"{prefix}/subnets/10.244.{i}.0-24", lease_value(f"n{i}", IPv4Address(f"192.168.50.1{i}"),
                                                                  "vxlan", {})) for i in (1, 2)]
    assert kv.txn([], puts)

    assert ok(pycni("apply", "--dry-run", "-f", str(tmp_path / "only-a.yaml"), *flags)) == (
        "networkpolicy.networking.k8s.io/only-a created (dry run)\n"
        "reachability: 1 lost, 0 gained among 3 known pods (TCP/8080):\n"
        "  x/c -> x/b TCP/8080: would be denied (allowed now)\n")
    assert "only-a" not in ok(pycni("get", "netpol", "-A", *flags))
    ok(pycni("apply", "-f", str(tmp_path / "only-a.yaml"), *flags))

    out = ok(pycni("policy", "explain", "--from", "x/c", "--to", "x/b", "--port", "8080/TCP", *flags))
    assert out.splitlines()[0] == "x/c (10.244.2.11) -> x/b (10.244.2.10) TCP/8080: denied"
    assert "  isolated by x/only-a" in out.splitlines()
    assert "the source x/c has no labels" in out
    assert out.splitlines()[-1] == "enforced by: egress of x/c on node n2, ingress of x/b on node n2"

    doc = json.loads(ok(pycni("policy", "explain", "--from", "x/a", "--to", "x/b", "--port", "http", "-o", "json",
                              *flags)))
    assert (doc["allowed"], doc["port"], doc["ingress"]["allowedBy"][0]["policy"]) == (True, 8080, "x/only-a")

    out = ok(pycni("policy", "explain", "--from", "10.244.2.1", "--to", "x/b", "--port", "8080", *flags))
    assert "from its own node n2" in out

    assert one_line_error(pycni("policy", "explain", "--from", "x/zz", "--to", "x/b", "--port", "80", *flags)) == (
        "pycni policy: pod x/zz not found: no Pod object and no endpoint of that name")
