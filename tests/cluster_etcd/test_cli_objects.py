"""``pycni apply|get|label|delete`` as a user runs them (subprocesses, real etcd)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import yaml

from pycni.cluster.etcd import EtcdKV
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
spec:
  containers:
  - {name: web, image: nginx, ports: [{name: http, containerPort: 80}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-http, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: x}}}]
    ports: [{port: http}]
"""

INVALID = """\
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bad, namespace: x}
spec:
  podSelector: {}
  egress:
  - to: [{ipBlock: {cidr: 10.0.0.0/8, except: [192.168.0.0/16]}}]
"""


def test_apply_get_label_delete(
    etcd_server: EtcdServer, prefix: str, tmp_path: Path, open_kv: Callable[..., EtcdKV]
) -> None:
    e = etcd_server.endpoint
    objects = tmp_path / "objects.yaml"
    objects.write_text(OBJECTS)
    flags = ("--etcd-prefix", prefix)

    assert ok(pycni("apply", "-f", str(objects), *flags, endpoint=e)) == (
        "namespace/x created\npod/a created\nnetworkpolicy.networking.k8s.io/allow-http created\n")
    assert ok(pycni("apply", "-f", str(objects), "--etcd-endpoints", e, *flags)) == (
        "namespace/x unchanged\npod/a unchanged\nnetworkpolicy.networking.k8s.io/allow-http unchanged\n")
    kv = open_kv(e)
    keys = [item.key for item in kv.list_prefix(prefix + "/")[0]]
    assert keys == [f"{prefix}/k8s/namespaces/x", f"{prefix}/k8s/networkpolicies/x/allow-http",
                    f"{prefix}/k8s/pods/x/a"]
    assert len({item.mod_revision for item in kv.list_prefix(prefix + "/")[0]}) == 1  # one transaction

    policy = yaml.safe_load(ok(pycni("get", "netpol", "allow-http", "-n", "x", "-o", "yaml", *flags, endpoint=e)))
    stored = kv.get(f"{prefix}/k8s/networkpolicies/x/allow-http")
    assert stored is not None
    assert policy["metadata"]["resourceVersion"] == str(stored.mod_revision)
    assert policy["spec"] == {
        "podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "x"}}}],
                     "ports": [{"port": "http", "protocol": "TCP"}]}],
    }
    table = ok(pycni("get", "networkpolicies", "-A", *flags, endpoint=e)).splitlines()
    assert table[0].split() == ["NAMESPACE", "NAME", "POD-SELECTOR", "AGE"]
    assert table[1].split()[:3] == ["x", "allow-http", "pod=a"]

    assert ok(pycni("label", "pod", "a", "-n", "x", "tier=web", *flags, endpoint=e)) == "pod/a labeled\n"
    assert one_line_error(pycni("label", "pod", "a", "-n", "x", "tier=db", *flags, endpoint=e)) == (
        "error: 'tier' already has a value (web), and --overwrite is false")
    assert ok(pycni("label", "pod", "a", "-n", "x", "tier=db", "--overwrite", *flags, endpoint=e)) == "pod/a labeled\n"
    pods = json.loads(ok(pycni("get", "po", "-n", "x", "-o", "json", *flags, endpoint=e)))
    assert [item["metadata"]["labels"] for item in pods["items"]] == [{"pod": "a", "tier": "db"}]

    # One invalid document: nothing of the file is stored, the error is one line.
    mixed = tmp_path / "mixed.yaml"
    mixed.write_text(OBJECTS.replace("name: x}", "name: y}").replace("namespace: x", "namespace: y") + INVALID)
    error = one_line_error(pycni("apply", "-f", str(mixed), *flags, endpoint=e))
    assert error == ('document 4: NetworkPolicy "x/bad" is invalid: spec.egress[0].to[0].ipBlock.except[0]: '
                     'Invalid value: "192.168.0.0/16": must be a strict subset of `cidr`')
    assert one_line_error(pycni("get", "ns", "y", *flags, endpoint=e)) == (
        'Error from server (NotFound): namespaces "y" not found')

    assert ok(pycni("delete", "netpol", "allow-http", "-n", "x", *flags, endpoint=e)) == (
        'networkpolicy.networking.k8s.io "allow-http" deleted\n')
    assert one_line_error(pycni("delete", "netpol", "allow-http", "-n", "x", *flags, endpoint=e)) == (
        'Error from server (NotFound): networkpolicies.networking.k8s.io "allow-http" not found')
    assert ok(pycni("delete", "-f", str(objects), "--ignore-not-found", *flags, endpoint=e)) == (
        'pod "a" deleted\nnamespace "x" deleted\n')
    assert kv.list_prefix(prefix + "/")[0] == []
