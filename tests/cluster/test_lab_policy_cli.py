"""Lab and agent NetworkPolicy plumbing that needs no lab: finding a lab's etcd, `lab pod add` and agent flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from pycni.cli.lab import parse_labels, parse_port
from pycni.cli.main import build_parser
from pycni.cli.objects import UsageError, lab_etcd_of
from pycni.cluster.lab_state import LabEtcd, LabState, lab_etcd


def make_lab(root: Path, lab_id: str) -> None:
    LabState(id=lab_id, root=str(root), backend="vxlan").save()


def test_no_lab_means_no_lab_etcd(tmp_path: Path) -> None:
    assert lab_etcd(str(tmp_path)) is None
    assert lab_etcd_of({"PYCNI_LAB_ROOT": str(tmp_path)}) is None


def test_the_only_lab_or_the_chosen_one(tmp_path: Path) -> None:
    make_lab(tmp_path, "pla")
    assert lab_etcd(str(tmp_path)) == LabEtcd("pla", "http://192.168.77.1:2379", "/run/netns/pla-ul")
    make_lab(tmp_path, "plb")
    assert lab_etcd_of({"PYCNI_LAB_ROOT": str(tmp_path), "PYCNI_LAB": "plb"}) == LabEtcd(
        "plb", "http://192.168.77.1:2379", "/run/netns/plb-ul")
    with pytest.raises(UsageError, match=r"several labs are up \(pla, plb\): set \$PYCNI_LAB or --etcd-endpoints"):
        lab_etcd_of({"PYCNI_LAB_ROOT": str(tmp_path)})
    with pytest.raises(ValueError, match="no lab 'plc' under"):
        lab_etcd(str(tmp_path), "plc")


def test_pod_add_flags() -> None:
    assert parse_labels("pod=a, app=web,,empty=") == {"pod": "a", "app": "web", "empty": ""}
    assert parse_port("http=80/TCP") == {"name": "http", "containerPort": 80, "protocol": "TCP"}
    assert parse_port("dns=53/udp") == {"name": "dns", "containerPort": 53, "protocol": "UDP"}
    assert parse_port("8080") == {"containerPort": 8080, "protocol": "TCP"}
    with pytest.raises(ValueError, match="--labels: 'pod' is not KEY=VALUE"):
        parse_labels("pod")
    with pytest.raises(ValueError, match="--port: 'http=x/TCP' is not NAME=PORT/PROTO"):
        parse_port("http=x/TCP")
    args = build_parser().parse_args(["lab", "pod", "add", "n1", "a", "-n", "x", "--labels", "pod=a",
                                      "--port", "http=80/TCP", "--port", "dns=53/UDP"])
    assert (args.namespace, args.labels, args.port) == ("x", "pod=a", ["http=80/TCP", "dns=53/UDP"])


def test_pod_keys_and_namespaces() -> None:
    state = LabState(id="pla", root="/nowhere", backend="vxlan")
    assert state.pod_netns("x/a") == "pla-p-x.a"
    assert state.pod_netns("web") == "pla-p-web"


def test_agent_policy_flags() -> None:
    args = build_parser().parse_args(["agent"])
    assert (args.policy, args.policy_timeout) == ("on", 10.0)
    args = build_parser().parse_args(["agent", "--policy", "off", "--policy-timeout", "3"])
    assert (args.policy, args.policy_timeout) == ("off", 3.0)
