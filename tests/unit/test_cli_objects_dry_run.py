"""``pycni apply --dry-run``: besides kubectl's lines, which known pod pairs would gain or lose reachability."""

from __future__ import annotations

import io

import pytest
import yaml

from pycni.cli.main import build_parser
from pycni.cli.objects import cmd_objects
from pycni.cluster.kv import Put
from pycni.policy.endpoints import Endpoint, encode, endpoint_key
from pycni.policy.model import ContainerPort, Namespace, Pod, labels_of
from pycni.policy.store import ObjectStore
from pycni.policy.validate import validate_all
from pycni.testing.kv import MemoryKV

PREFIX = "/pycni"
DENY_B = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-a, namespace: x}
spec:
  podSelector: {matchLabels: {pod: b}}
  ingress:
  - from: [{podSelector: {matchLabels: {pod: a}}}]
    ports: [{port: http}]
"""


def dry_run(kv: MemoryKV, manifest: str) -> str:
    args = build_parser().parse_args(["apply", "--dry-run", "-f", "-"])
    out, err = io.StringIO(), io.StringIO()
    assert cmd_objects(args, {}, kv=kv, stdin=io.StringIO(manifest), out=out, err=err) == 0, err.getvalue()
    return out.getvalue()


@pytest.fixture
def kv() -> MemoryKV:
    kv = MemoryKV()
    ObjectStore(kv, PREFIX).apply([
        Namespace("x"),
        Pod("x", "a", labels_of({"pod": "a"})),
        Pod("x", "b", labels_of({"pod": "b"}), (ContainerPort(8080, "TCP", "http"),)),
        Pod("x", "c", labels_of({"pod": "c"})),
    ])
    kv.txn([], [Put(endpoint_key(PREFIX, e), encode(e)) for e in (
        Endpoint("x", "a", "n1", ("10.244.1.10",), "c1", "eth0"),
        Endpoint("x", "b", "n1", ("10.244.1.11",), "c2", "eth0"),
        Endpoint("x", "c", "n2", ("10.244.2.10",), "c3", "eth0"),
    )])
    return kv


def test_a_new_policy_lists_the_pairs_that_lose_and_stores_nothing(kv: MemoryKV) -> None:
    before = kv.list_prefix(PREFIX + "/")
    assert dry_run(kv, DENY_B) == (
        "networkpolicy.networking.k8s.io/only-a created (dry run)\n"
        "reachability: 1 lost, 0 gained among 3 known pods (TCP/8080):\n"
        "  x/c -> x/b TCP/8080: would be denied (allowed now)\n"
    )
    assert kv.list_prefix(PREFIX + "/") == before


def test_relabelling_a_pod_can_gain_and_lose(kv: MemoryKV) -> None:
    ObjectStore(kv, PREFIX).apply(validate_all(list(yaml.safe_load_all(DENY_B))))
    swap = """\
apiVersion: v1
kind: Pod
metadata: {name: c, namespace: x, labels: {pod: a}}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {pod: c}}
"""
    assert dry_run(kv, swap) == (
        "pod/c configured (dry run)\npod/a configured (dry run)\n"
        "reachability: 1 lost, 1 gained among 3 known pods (TCP/8080):\n"
        "  x/a -> x/b TCP/8080: would be denied (allowed now)\n"
        "  x/c -> x/b TCP/8080: would be allowed (denied now)\n"
    )


def test_no_change_is_said_and_no_known_pod_prints_nothing(kv: MemoryKV) -> None:
    assert dry_run(kv, "apiVersion: v1\nkind: Namespace\nmetadata: {name: y}\n") == (
        "namespace/y created (dry run)\nreachability: no change among 3 known pods (TCP/8080)\n")
    assert dry_run(MemoryKV(), DENY_B.replace("namespace: x", "namespace: default")) == (
        "networkpolicy.networking.k8s.io/only-a created (dry run)\n")
