"""``pycni apply|delete|get|label`` through main's parser, with MemoryKV injected: kubectl's output and errors."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from pycni.cli.main import build_parser
from pycni.cli.objects import cmd_objects, human_duration, parse_label_args, resolve_kind
from pycni.testing.kv import MemoryKV

T0 = 1_700_000_000.0

OBJECTS = """\
apiVersion: v1
kind: Namespace
metadata:
  name: x
  labels: {team: a}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: x, labels: {pod: a}}
spec:
  containers:
  - name: c
    image: nginx
    ports: [{name: http, containerPort: 80}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from: [{podSelector: {}}]
    ports: [{port: 80}]
"""

BAD_PORT = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: bad, namespace: x}
spec:
  podSelector: {}
  ingress:
  - ports: [{port: 70000}]
"""


@dataclass
class Ran:
    code: int
    out: str
    err: str


class Cli:
    def __init__(self, kv: MemoryKV) -> None:
        self.kv = kv
        self.now = T0

    def __call__(self, *argv: str, stdin: str = "") -> Ran:
        args = build_parser().parse_args(list(argv))
        out, err = io.StringIO(), io.StringIO()
        code = cmd_objects(args, {}, kv=self.kv, stdin=io.StringIO(stdin), out=out, err=err, now=lambda: self.now)
        return Ran(code, out.getvalue(), err.getvalue())

    def ok(self, *argv: str, stdin: str = "") -> str:
        ran = self(*argv, stdin=stdin)
        assert ran.code == 0 and ran.err == "", ran
        return ran.out

    def error(self, *argv: str, stdin: str = "") -> str:
        ran = self(*argv, stdin=stdin)
        assert ran.code == 1, ran
        lines = ran.err.splitlines()
        assert len(lines) == 1, ran.err
        return lines[0]


@pytest.fixture
def kv() -> MemoryKV:
    return MemoryKV()


@pytest.fixture
def cli(kv: MemoryKV) -> Cli:
    return Cli(kv)


@pytest.fixture
def objects_file(tmp_path: Path) -> str:
    path = tmp_path / "objects.yaml"
    path.write_text(OBJECTS)
    return str(path)


def test_apply_prints_kubectls_lines_created_unchanged_configured(cli: Cli, objects_file: str) -> None:
    assert cli.ok("apply", "-f", objects_file) == (
        "namespace/x created\npod/a created\nnetworkpolicy.networking.k8s.io/deny created\n")
    assert cli.ok("apply", "-f", objects_file) == (
        "namespace/x unchanged\npod/a unchanged\nnetworkpolicy.networking.k8s.io/deny unchanged\n")
    changed = OBJECTS.replace("{pod: a}}", "{pod: b}}", 1)
    assert cli.ok("apply", "-f", "-", stdin=changed) == (
        "namespace/x unchanged\npod/a configured\nnetworkpolicy.networking.k8s.io/deny unchanged\n")


def test_apply_dry_run_stores_nothing(cli: Cli, kv: MemoryKV, objects_file: str) -> None:
    assert cli.ok("apply", "--dry-run", "-f", objects_file) == (
        "namespace/x created (dry run)\npod/a created (dry run)\n"
        "networkpolicy.networking.k8s.io/deny created (dry run)\n")
    assert kv.list_prefix("/pycni/")[0] == []


def test_an_invalid_document_stores_nothing_and_says_where_in_one_line(
    cli: Cli, kv: MemoryKV, tmp_path: Path
) -> None:
    path = tmp_path / "mixed.yaml"
    path.write_text(OBJECTS + "---\n" + BAD_PORT)
    assert cli.error("apply", "-f", str(path)) == (
        'document 4: NetworkPolicy "x/bad" is invalid: spec.ingress[0].ports[0].port: Invalid value: 70000: '
        "must be between 1 and 65535, inclusive")
    assert kv.list_prefix("/pycni/")[0] == []
    second = tmp_path / "bad.yaml"
    second.write_text(BAD_PORT)
    error = cli.error("apply", "-f", str(tmp_path / "mixed.yaml").replace("mixed", "bad"), "-f", "-", stdin=OBJECTS)
    assert error.startswith(f'{second}: document 1: NetworkPolicy "x/bad" is invalid: ')  # several files: which one


def test_apply_manifest_and_file_errors(cli: Cli, tmp_path: Path) -> None:
    assert cli.error("apply", "-f", "-", stdin="a: [").startswith("error: -: document 1: invalid YAML: ")
    missing = str(tmp_path / "nope.yaml")
    assert cli.error("apply", "-f", missing) == f'error: the path "{missing}" does not exist'
    assert cli.error("apply", "-f", "-", stdin="") == "error: no objects passed to apply"
    assert cli.error("apply", "-f", "-", stdin=OBJECTS.split("---\n")[1]) == (
        'Error from server (NotFound): error when creating pod/a: namespaces "x" not found')


def test_apply_namespace_flag_fills_in_and_must_agree(cli: Cli, kv: MemoryKV) -> None:
    cli.ok("apply", "-f", "-", stdin="apiVersion: v1\nkind: Namespace\nmetadata: {name: y}\n")
    pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"
    assert cli.ok("apply", "-n", "y", "-f", "-", stdin=pod) == "pod/p created\n"
    assert kv.get("/pycni/k8s/pods/y/p") is not None
    assert cli.error("apply", "-n", "y", "-f", "-", stdin=pod.replace("{name: p}", "{name: p, namespace: z}")) == (
        'error: the namespace from the provided object "z" does not match the namespace "y". '
        "You must pass '--namespace=z' to perform this operation.")
    assert cli.ok("apply", "-f", "-", stdin=pod) == "pod/p created\n"  # no -n: default (created on first use)
    assert kv.get("/pycni/k8s/pods/default/p") is not None


def test_apply_reads_a_directory_and_lists(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "1-ns.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n")
    (tmp_path / "2-pods.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": n, "namespace": "x"}} for n in ("a", "b")]}))
    (tmp_path / "notes.txt").write_text("not a manifest")
    assert cli.ok("apply", "-f", str(tmp_path)) == "namespace/x created\npod/a created\npod/b created\n"


def test_get_tables(cli: Cli, objects_file: str) -> None:
    cli.ok("apply", "-f", objects_file)
    cli.now = T0 + 200
    assert cli.ok("get", "netpol", "-n", "x") == "NAME   POD-SELECTOR   AGE\ndeny   pod=a          3m20s\n"
    assert cli.ok("get", "networkpolicies.networking.k8s.io", "-A") == (
        "NAMESPACE   NAME   POD-SELECTOR   AGE\nx           deny   pod=a          3m20s\n")
    assert cli.ok("get", "ns", "--show-labels") == (
        "NAME   STATUS   AGE     LABELS\nx      Active   3m20s   kubernetes.io/metadata.name=x,team=a\n")
    assert cli.ok("get", "po", "-n", "x", "-o", "wide") == (
        "NAME   AGE     IP       NODE\na      3m20s   <none>   <none>\n")
    assert cli.ok("get", "Pods", "-n", "x", "-o", "name") == "pod/a\n"
    assert cli.ok("get", "pod/a", "-n", "x", "-o", "name") == "pod/a\n"
    assert cli.error("get", "pod/a", "ns/x") == "error: pycni get takes one kind at a time"


def test_get_pod_wide_shows_ip_and_node_once_known(cli: Cli) -> None:
    running = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "r"},
               "spec": {"nodeName": "node-1"}, "status": {"podIP": "10.244.1.5"}}
    cli.ok("apply", "-f", "-", stdin=json.dumps(running))
    assert cli.ok("get", "pod", "-o", "wide") == "NAME   AGE   IP           NODE\nr      0s    10.244.1.5   node-1\n"


def test_get_yaml_and_json(cli: Cli, kv: MemoryKV, objects_file: str) -> None:
    cli.ok("apply", "-f", objects_file)
    one = yaml.safe_load(cli.ok("get", "netpol", "deny", "-n", "x", "-o", "yaml"))
    assert one == {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "deny", "namespace": "x", "creationTimestamp": "2023-11-14T22:13:20Z",
                     "resourceVersion": str(kv.revision)},
        "spec": {"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Ingress"],
                 "ingress": [{"from": [{"podSelector": {}}], "ports": [{"port": 80, "protocol": "TCP"}]}]},
    }
    assert f'resourceVersion: "{kv.revision}"' in cli.ok("get", "netpol", "deny", "-n", "x", "-o", "yaml")
    listing = json.loads(cli.ok("get", "netpol", "-A", "-o", "json"))
    assert listing["kind"] == "List" and listing["apiVersion"] == "v1"
    assert [item["metadata"]["name"] for item in listing["items"]] == ["deny"]
    assert cli.ok("get", "netpol", "deny", "-n", "x", "-o", "json").startswith('{\n    "apiVersion"')
    assert json.loads(cli.ok("get", "netpol", "-n", "y", "-o", "json"))["items"] == []


def test_get_not_found_and_empty(cli: Cli, objects_file: str) -> None:
    cli.ok("apply", "-f", objects_file)
    assert cli.error("get", "netpol", "nope", "-n", "x") == (
        'Error from server (NotFound): networkpolicies.networking.k8s.io "nope" not found')
    ran = cli("get", "netpol")
    assert (ran.code, ran.out, ran.err) == (0, "", "No resources found in default namespace.\n")
    ran = cli("get", "pods", "a", "b", "-n", "x")
    assert ran.code == 1 and ran.out.splitlines()[1].startswith("a ")
    assert ran.err == 'Error from server (NotFound): pods "b" not found\n'
    assert cli.error("get", "services") == 'error: the server doesn\'t have a resource type "services"'


def test_label(cli: Cli, objects_file: str) -> None:
    cli.ok("apply", "-f", objects_file)
    assert cli.ok("label", "pod", "a", "-n", "x", "env=prod") == "pod/a labeled\n"
    assert cli.error("label", "po", "a", "-n", "x", "env=dev") == (
        "error: 'env' already has a value (prod), and --overwrite is false")
    assert cli.ok("label", "po", "a", "-n", "x", "--overwrite", "env=dev", "gone-") == (
        'label "gone" not found.\npod/a labeled\n')
    assert cli.ok("label", "po", "a", "-n", "x", "gone-") == 'label "gone" not found.\npod/a not labeled\n'
    assert cli.ok("get", "po", "a", "-n", "x", "--show-labels").splitlines()[1].split()[-1] == "env=dev,pod=a"
    ran = cli("label", "netpol", "deny", "-n", "x", "owner=me")  # never a false "labeled"
    if ran.code == 0:
        assert ran.out == "networkpolicy.networking.k8s.io/deny labeled\n"
        assert "owner=me" in cli.ok("get", "netpol", "deny", "-n", "x", "--show-labels")
    else:
        assert ran.err == ("error: networkpolicy.networking.k8s.io/deny: pycni keeps no labels on a NetworkPolicy "
                           "(its model has none)\n")
    assert cli.error("label", "pod", "zz", "-n", "x", "a=b") == 'Error from server (NotFound): pods "zz" not found'
    assert cli.error("label", "pod", "a", "-n", "x", "a=b", "a-") == (
        "error: can not both modify and remove a label in the same command")
    assert cli.error("label", "pod", "a", "-n", "x", "bad value=x").startswith(
        'Pod "x/a" is invalid: metadata.labels: Invalid value: "bad value"')


def test_delete_by_name_and_by_file(cli: Cli, kv: MemoryKV, objects_file: str) -> None:
    cli.ok("apply", "-f", objects_file)
    assert cli.ok("delete", "netpol", "deny", "-n", "x") == 'networkpolicy.networking.k8s.io "deny" deleted\n'
    assert cli.error("delete", "netpol", "deny", "-n", "x") == (
        'Error from server (NotFound): networkpolicies.networking.k8s.io "deny" not found')
    assert cli.ok("delete", "netpol/deny", "-n", "x", "--ignore-not-found") == ""
    ran = cli("delete", "-f", objects_file)  # contents first, then the namespace; the policy is already gone
    assert ran.code == 1
    assert ran.out == 'pod "a" deleted\nnamespace "x" deleted\n'
    assert ran.err == 'Error from server (NotFound): networkpolicies.networking.k8s.io "deny" not found\n'
    cli.ok("apply", "-f", objects_file)
    assert cli.ok("delete", "-f", objects_file) == (
        'pod "a" deleted\nnetworkpolicy.networking.k8s.io "deny" deleted\nnamespace "x" deleted\n')
    assert [item.key for item in kv.list_prefix("/pycni/k8s/")[0]] == []


def test_delete_namespace_takes_its_contents_and_default_stays(cli: Cli, kv: MemoryKV, objects_file: str) -> None:
    cli.ok("apply", "-f", objects_file)
    assert cli.ok("delete", "ns", "x") == 'namespace "x" deleted\n'
    assert kv.list_prefix("/pycni/k8s/")[0] == []
    cli.ok("apply", "-f", "-", stdin="apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n")
    assert cli.error("delete", "namespace", "default") == (
        'Error from server (Forbidden): namespaces "default" is forbidden: this namespace may not be deleted')
    assert cli.error("delete", "pod") == "error: resource(s) were provided, but no name was specified (pod NAME)"
    assert cli.error("delete") == "error: you must provide one or more resources by argument or filename"


def test_etcd_prefix_is_honoured(cli: Cli, kv: MemoryKV, objects_file: str) -> None:
    cli.ok("apply", "--etcd-prefix", "/other", "-f", objects_file)
    assert {item.key.split("/")[1] for item in kv.list_prefix("/")[0]} == {"other"}
    assert cli.ok("get", "ns", "x", "--etcd-prefix", "other/").startswith("NAME")


@pytest.mark.parametrize(("word", "kind"), [
    ("netpol", "NetworkPolicy"), ("NetworkPolicies", "NetworkPolicy"), ("networkpolicy", "NetworkPolicy"),
    ("ns", "Namespace"), ("namespaces", "Namespace"), ("po", "Pod"), ("pod", "Pod"), ("pods", "Pod"),
])
def test_kind_aliases(word: str, kind: str) -> None:
    assert resolve_kind(word).name == kind


def test_label_specs() -> None:
    assert parse_label_args(["a=b", "c-", "d="]) == ({"a": "b", "d": ""}, ["c"])
    for spec, message in (("a=b=c", "invalid label spec: a=b=c"), ("a", "unknown label spec: a")):
        with pytest.raises(Exception, match=message):
            parse_label_args([spec])


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (119, "119s"), (120, "2m"), (200, "3m20s"), (600, "10m"), (3 * 3600 + 60, "3h1m"),
    (8 * 3600, "8h"), (48 * 3600, "2d"), (50 * 3600, "2d2h"), (10 * 86400, "10d"), (800 * 86400, "2y70d"),
    (-5, "<invalid>"),
])
def test_ages_read_as_kubectls(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


ADMIN_OBJECTS = """\
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: ops}
spec:
  priority: 10
  subject: {namespaces: {}}
  ingress:
  - {name: no-y, action: Deny, from: [{namespaces: {matchLabels: {ns: y}}}]}
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: {name: default}
spec:
  subject: {namespaces: {}}
  egress:
  - {action: Allow, to: [{networks: [10.0.0.0/8]}]}
"""


def test_admin_tiers_apply_get_and_delete_cluster_scoped(cli: Cli) -> None:
    assert cli.ok("apply", "-f", "-", stdin=ADMIN_OBJECTS) == (
        "adminnetworkpolicy.policy.networking.k8s.io/ops created\n"
        "baselineadminnetworkpolicy.policy.networking.k8s.io/default created\n")
    cli.now = T0 + 60
    assert cli.ok("get", "anp") == "NAME   PRIORITY   AGE\nops    10         60s\n"
    assert cli.ok("get", "banp", "-n", "x") == "NAME      AGE\ndefault   60s\n", "-n is ignored: cluster-scoped"
    assert "action: Deny" in cli.ok("get", "adminnetworkpolicies", "ops", "-o", "yaml")
    bad = ADMIN_OBJECTS.replace("priority: 10", "priority: 1001")
    assert cli.error("apply", "-f", "-", stdin=bad) == (
        'document 1: AdminNetworkPolicy "ops" is invalid: spec.priority: Invalid value: 1001: '
        "spec.priority in body should be less than or equal to 1000")
    assert cli.ok("delete", "anp", "ops") == 'adminnetworkpolicy.policy.networking.k8s.io "ops" deleted\n'
