"""The host-local plugin through skel.dispatch, with a dataDir in tmp_path (no root needed)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from pycni import skel
from pycni.ipam.host_local.plugin import make_plugin
from pycni.ipam.host_local.store import MemoryStore, Store
from pycni.registry import load_plugin

PLUGIN = load_plugin("host-local")

ENV = {"CNI_CONTAINERID": "ctr1", "CNI_NETNS": "/var/run/netns/test", "CNI_IFNAME": "eth0", "CNI_PATH": "/usr/lib/cni"}


class Harness:
    """Runs the plugin the way a runtime would, and reads what it printed."""

    def __init__(self, data_dir: Path, plugin: skel.Plugin = PLUGIN) -> None:
        self.data_dir = data_dir
        self.plugin = plugin

    def config(self, ranges: list[Any] | None = None, version: str = "1.0.0", **extra: Any) -> dict[str, Any]:
        ipam: dict[str, Any] = {"type": "host-local", "dataDir": str(self.data_dir)}
        if ranges is not None:
            ipam["ranges"] = ranges
        ipam.update(extra.pop("ipam", {}))
        return {"cniVersion": version, "name": "net1", "type": "bridge", "ipam": ipam, **extra}

    def run(self, command: str, config: dict[str, Any], **env: str) -> tuple[int, Any]:
        environ = {**ENV, "CNI_COMMAND": command, **env}
        outcome = skel.dispatch(
            self.plugin, {k: v for k, v in environ.items() if v is not None}, json.dumps(config).encode()
        )
        return outcome.exit_code, json.loads(outcome.stdout) if outcome.stdout else None

    def files(self) -> list[str]:
        directory = self.data_dir / "net1"
        return sorted(os.listdir(directory)) if directory.exists() else []


V4 = [{"subnet": "10.1.0.0/24"}]
V6 = [{"subnet": "fd00:1::/120"}]


@pytest.fixture
def hl(tmp_path: Path) -> Harness:
    return Harness(tmp_path / "data")


def test_add_returns_an_ipam_result(hl: Harness) -> None:
    code, out = hl.run("ADD", hl.config([V4, V6], ipam={"routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]}))
    assert code == 0
    assert out == {
        "cniVersion": "1.0.0",
        "ips": [
            {"address": "10.1.0.2/24", "gateway": "10.1.0.1"},
            {"address": "fd00:1::2/120", "gateway": "fd00:1::1"},
        ],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
    }
    assert hl.files() == ["10.1.0.2", "fd00:1::2", "last_reserved_ip.0", "last_reserved_ip.1", "lock"]
    assert (hl.data_dir / "net1" / "10.1.0.2").read_bytes() == b"ctr1\r\neth0"


def test_add_in_old_versions(hl: Harness) -> None:
    # The shapes Go's host-local printed for the same request (cni-spec.md 3.8).
    code, out = hl.run("ADD", hl.config([[{"subnet": "10.98.0.0/30"}], [{"subnet": "fd00::/126"}]], version="0.2.0"))
    assert (code, out) == (
        0,
        {
            "cniVersion": "0.2.0",
            "ip4": {"ip": "10.98.0.2/30", "gateway": "10.98.0.1"},
            "ip6": {"ip": "fd00::2/126", "gateway": "fd00::1"},
        },
    )
    code, out = hl.run(
        "ADD",
        hl.config([[{"subnet": "10.98.0.0/30"}], [{"subnet": "fd00::/126"}]], version="0.2.0"),
        CNI_CONTAINERID="ctr2",
    )
    assert out == {
        "cniVersion": "0.2.0",
        "code": 999,
        "msg": "failed to allocate for range 0: no IP addresses available in range set: 10.98.0.1-10.98.0.2",
    }
    code, out = hl.run("ADD", hl.config([V4], version="0.3.1"), CNI_CONTAINERID="ctr3")
    assert out["ips"] == [{"version": "4", "address": "10.1.0.2/24", "gateway": "10.1.0.1"}]


def test_two_sets_of_one_family_need_030(hl: Harness) -> None:
    code, out = hl.run("ADD", hl.config([V4, [{"subnet": "10.2.0.0/24"}]], version="0.2.0"))
    assert (code, out["code"], out["msg"]) == (
        1,
        7,
        "CNI version 0.2.0 does not support more than 1 address per family",
    )


def test_dns_from_resolv_conf(hl: Harness, tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 10.0.0.53\nsearch example.com\noptions ndots:2\n")
    code, out = hl.run("ADD", hl.config([V4], ipam={"resolvConf": str(resolv)}))
    assert out["dns"] == {"nameservers": ["10.0.0.53"], "search": ["example.com"], "options": ["ndots:2"]}
    code, out = hl.run("ADD", hl.config([V4], ipam={"resolvConf": str(tmp_path / "nope")}), CNI_CONTAINERID="c2")
    assert (code, out["code"]) == (1, 7)
    assert out["msg"] == f"ipam.resolvConf: failed to read '{tmp_path / 'nope'}': No such file or directory"
    assert hl.files() == ["10.1.0.2", "last_reserved_ip.0", "lock"]  # nothing reserved for the failed ADD


def test_duplicate_add_is_refused(hl: Harness) -> None:
    assert hl.run("ADD", hl.config([V4]))[0] == 0
    code, out = hl.run("ADD", hl.config([V4]))
    assert (code, out["msg"]) == (
        1,
        "failed to allocate for range 0: 10.1.0.2 has been allocated to ctr1, duplicate allocation is not allowed",
    )
    assert hl.run("ADD", hl.config([V4]), CNI_IFNAME="eth1")[1]["ips"][0]["address"] == "10.1.0.3/24"


def test_del_releases_everything_of_the_attachment_and_is_idempotent(hl: Harness) -> None:
    config = hl.config([V4, V6])
    hl.run("ADD", config)
    hl.run("ADD", config, CNI_IFNAME="eth1")
    assert hl.run("DEL", config) == (0, None)
    assert hl.files() == ["10.1.0.3", "fd00:1::3", "last_reserved_ip.0", "last_reserved_ip.1", "lock"]
    assert hl.run("DEL", config) == (0, None)
    assert hl.run("DEL", config, CNI_NETNS="") == (0, None)  # no netns on DEL: still fine
    # Release needs no ranges and ignores CNI_ARGS: the runtime may not resend ipRanges.
    assert hl.run("DEL", hl.config(None), CNI_IFNAME="eth1", CNI_ARGS="WHATEVER=1") == (0, None)
    assert hl.files() == ["last_reserved_ip.0", "last_reserved_ip.1", "lock"]


def test_check(hl: Harness) -> None:
    config = hl.config([V4])
    hl.run("ADD", config)
    assert hl.run("CHECK", config) == (0, None)
    code, out = hl.run("CHECK", config, CNI_CONTAINERID="ctr2")
    assert (code, out["code"], out["msg"]) == (1, 3, "host-local: Failed to find address added by container ctr2")
    code, out = hl.run("CHECK", hl.config([V4], version="0.3.1"))
    assert out["msg"] == "config version does not allow CHECK"


def test_requested_ips(hl: Harness) -> None:
    code, out = hl.run("ADD", hl.config([V4, V6], runtimeConfig={"ips": ["fd00:1::9/120"]}), CNI_ARGS="IP=10.1.0.9")
    assert [ip["address"] for ip in out["ips"]] == ["10.1.0.9/24", "fd00:1::9/120"]
    code, out = hl.run("ADD", hl.config([V4]), CNI_CONTAINERID="c2", CNI_ARGS="IP=10.1.0.9")
    assert (
        out["msg"] == "failed to allocate for range 0: requested IP address 10.1.0.9 is not available in range set"
        " 10.1.0.1-10.1.0.254"
    )
    code, out = hl.run("ADD", hl.config([V4]), CNI_CONTAINERID="c2", CNI_ARGS="K8S_POD_NAME=x")
    assert (code, out["code"], out["msg"]) == (1, 4, "ARGS: unknown args ['K8S_POD_NAME']")
    _, out = hl.run(
        "ADD", hl.config([V4]), CNI_CONTAINERID="c2", CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.1.0.20"
    )
    assert out["ips"][0]["address"] == "10.1.0.20/24"


def test_ip_ranges_capability_is_numbered_first(hl: Harness) -> None:
    config = hl.config([V4], runtimeConfig={"ipRanges": [[{"subnet": "10.7.0.0/24"}]]})
    _, out = hl.run("ADD", config)
    assert [ip["address"] for ip in out["ips"]] == ["10.7.0.2/24", "10.1.0.2/24"]
    assert (hl.data_dir / "net1" / "last_reserved_ip.0").read_bytes() == b"10.7.0.2"


def test_gc_releases_stale_attachments(hl: Harness) -> None:
    config = hl.config([V4], version="1.1.0")
    for cid in ("a", "b", "c"):
        hl.run("ADD", config, CNI_CONTAINERID=cid)
    gc = {**hl.config(None, version="1.1.0"), "cni.dev/valid-attachments": [{"containerID": "b", "ifname": "eth0"}]}
    assert hl.run("GC", gc) == (0, None)
    assert hl.files() == ["10.1.0.3", "last_reserved_ip.0", "lock"]
    _, out = hl.run("GC", hl.config([V4], version="1.0.0"))
    assert out["msg"] == "config version does not allow GC"


def test_status_reports_exhaustion(hl: Harness) -> None:
    small = [[{"subnet": "10.98.0.0/30"}], V6]
    assert hl.run("STATUS", hl.config(small, version="1.1.0")) == (0, None)
    assert hl.run("STATUS", hl.config(None, version="1.1.0")) == (0, None)  # ranges only at ADD: nothing to judge
    hl.run("ADD", hl.config(small, version="1.1.0"))
    code, out = hl.run("STATUS", hl.config(small, version="1.1.0"))
    assert (code, out["code"]) == (1, 50)
    assert out["msg"] == "no IP addresses available in range set 0: 10.98.0.1-10.98.0.2"
    hl.run("DEL", hl.config(small, version="1.1.0"))
    assert hl.run("STATUS", hl.config(small, version="1.1.0")) == (0, None)


def test_status_does_not_touch_the_disk(hl: Harness) -> None:
    hl.run("STATUS", hl.config([V4], version="1.1.0"))
    assert not hl.data_dir.exists()


def test_config_errors_are_code_7(hl: Harness) -> None:
    code, out = hl.run("ADD", hl.config([[{"subnet": "10.0.0.0/33"}]]))
    assert (code, out["code"], out["msg"]) == (1, 7, "ipam.ranges[0][0].subnet: '10.0.0.0/33' is not a CIDR")
    code, out = hl.run("ADD", {"cniVersion": "1.0.0", "name": "net1", "type": "bridge"})
    assert (out["code"], out["msg"]) == (7, "IPAM config missing 'ipam' key")


def test_with_a_memory_store(tmp_path: Path) -> None:
    stores: dict[tuple[str, str], MemoryStore] = {}

    def open_store(data_dir: str, network: str) -> Store:
        return stores.setdefault((data_dir, network), MemoryStore())

    hl = Harness(tmp_path / "unused", make_plugin(open_store))
    assert hl.run("ADD", hl.config([V4]))[1]["ips"][0]["address"] == "10.1.0.2/24"
    (store,) = stores.values()
    assert [r.container_id for r in store.reservations()] == ["ctr1"]
    assert hl.run("DEL", hl.config([V4])) == (0, None)
    assert store.reservations() == ()
    assert not (tmp_path / "unused").exists()
