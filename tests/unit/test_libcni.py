"""The runtime library against scripted in-memory plugins (pycni.testing.FakeExec)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import pycni.runtime
from pycni.runtime import (
    Attachment,
    CniConfig,
    GcError,
    PluginError,
    PluginExec,
    PluginNotFound,
    RuntimeConf,
    ValidationError,
    WrappedError,
)
from pycni.spec.config import NetConfList, conflist_from_bytes
from pycni.spec.errors import (
    CniError,
    IncompatibleVersion,
    InvalidConfig,
    InvalidEnvironment,
    IOFailure,
    PluginNotAvailable,
    TryAgainLater,
    UnknownContainer,
)
from pycni.spec.result import Result
from pycni.testing.exec import FakeExec, passes_through, returns_result

PATH = ["/opt/cni/bin", "/usr/local/lib/cni"]
BRIDGE_RESULT = {
    "cniVersion": "1.1.0",
    "interfaces": [{"name": "cni0", "mac": "46:2f:8a:11:22:33"}, {"name": "eth0", "sandbox": "/run/netns/x"}],
    "ips": [{"address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 1}],
    "routes": [{"dst": "0.0.0.0/0"}],
}
RT = RuntimeConf(
    container_id="ctr1",
    netns="/run/netns/x",
    ifname="eth0",
    args=(("IgnoreUnknown", "1"),),
    capability_args={"mac": "00:11:22:33:44:66", "portMappings": [{"hostPort": 80, "containerPort": 8080}]},
)


def netlist(version: str = "1.1.0", name: str = "dbnet", **extra: Any) -> NetConfList:
    doc = {
        "cniVersion": version,
        "name": name,
        **extra,
        "plugins": [
            {"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local"}},
            {"type": "tuning", "capabilities": {"mac": True, "bandwidth": True}},
        ],
    }
    return conflist_from_bytes(json.dumps(doc).encode())


def add_route(command: str, stdin: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any] | None:
    """A chained plugin that adds a route to its prevResult."""
    if command != "ADD":
        return None
    out = dict(stdin["prevResult"])
    out["routes"] = [*out.get("routes", []), {"dst": "192.168.0.0/24"}]
    return out


@pytest.fixture
def fake() -> FakeExec:
    fake = FakeExec()
    fake.register("bridge", returns_result(BRIDGE_RESULT))
    fake.register("tuning", add_route)
    return fake


@pytest.fixture
def cni(fake: FakeExec, tmp_path: Path) -> CniConfig:
    return CniConfig(PATH, exec=fake, cache_dir=str(tmp_path))


def cache_file(tmp_path: Path, name: str = "dbnet-ctr1-eth0") -> Path:
    return tmp_path / "results" / name


def fail_on(plugin_command: str, error: CniError, then: Any = passes_through) -> Any:
    def handler(command: str, stdin: dict[str, Any], env: Mapping[str, str]) -> Any:
        if command == plugin_command:
            raise error
        return then(command, stdin, env)

    return handler


def test_fake_exec_is_a_plugin_exec() -> None:
    seam: PluginExec = FakeExec()
    assert seam is not None


def test_public_api() -> None:
    assert sorted(pycni.runtime.__all__) == sorted(
        [
            "Attachment",
            "CacheEntry",
            "CachedAttachment",
            "CniConfig",
            "CorruptCacheEntry",
            "ExecFailed",
            "GcError",
            "MultiError",
            "NoConfigsFound",
            "NotFound",
            "PluginError",
            "PluginExec",
            "PluginNotFound",
            "PluginTimeout",
            "RawExec",
            "ResultCache",
            "RuntimeConf",
            "SkippedConf",
            "ValidationError",
            "WrappedError",
            "conf_files",
            "find_in_path",
            "load_all",
            "load_file",
            "load_network_conf",
        ]
    )
    for name in pycni.runtime.__all__:
        assert hasattr(pycni.runtime, name)


# --------------------------------------------------------------------------
# ADD
# --------------------------------------------------------------------------


def test_add_chains_prev_result_and_caches_the_final_result(cni: CniConfig, fake: FakeExec, tmp_path: Path) -> None:
    conf = netlist()
    result = cni.add_network_list(conf, RT)

    bridge, tuning = fake.calls
    assert (bridge.plugin_type, bridge.command, tuning.plugin_type, tuning.command) == (
        "bridge",
        "ADD",
        "tuning",
        "ADD",
    )
    assert "prevResult" not in bridge.stdin
    assert tuning.stdin["prevResult"] == Result.from_wire(BRIDGE_RESULT).to_wire()
    for call in fake.calls:
        assert call.stdin["name"] == "dbnet" and call.stdin["cniVersion"] == "1.1.0"
        assert call.env == {
            "CNI_COMMAND": "ADD",
            "CNI_CONTAINERID": "ctr1",
            "CNI_NETNS": "/run/netns/x",
            "CNI_IFNAME": "eth0",
            "CNI_ARGS": "IgnoreUnknown=1",
            "CNI_PATH": os.pathsep.join(PATH),
        }
    # runtimeConfig: only declared capabilities the runtime provides, omitted when empty
    assert "runtimeConfig" not in bridge.stdin
    assert tuning.stdin["runtimeConfig"] == {"mac": "00:11:22:33:44:66"}
    assert bridge.stdin["bridge"] == "cni0"

    assert [str(r.dst) for r in result.routes] == ["0.0.0.0/0", "192.168.0.0/24"]
    cached = json.loads(cache_file(tmp_path).read_text())
    assert cached["result"] == result.to_wire()
    assert cached["netns"] == "/run/netns/x"
    assert cached["cniArgs"] == [["IgnoreUnknown", "1"]]
    assert cached["capabilityArgs"] == dict(RT.capability_args)
    assert cni.get_network_list_cached_result(conf, RT) == result


def test_add_sends_the_negotiated_version(cni: CniConfig, fake: FakeExec) -> None:
    fake.register("bridge", returns_result({**BRIDGE_RESULT, "cniVersion": "1.0.0"}))
    cni.add_network_list(netlist("0.4.0", cniVersions=["1.0.0", "0.3.1"]), RT)
    assert [c.stdin["cniVersion"] for c in fake.calls] == ["1.0.0", "1.0.0"]


def test_add_result_without_version_gets_the_request_version(cni: CniConfig, fake: FakeExec) -> None:
    fake.register("bridge", returns_result({k: v for k, v in BRIDGE_RESULT.items() if k != "cniVersion"}))
    result = cni.add_network_list(netlist("1.0.0"), RT)
    assert result.cni_version == "1.0.0"


def test_prev_result_is_passed_in_the_version_the_plugin_returned(cni: CniConfig, fake: FakeExec) -> None:
    old = {"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "10.1.0.5/16"}]}
    fake.register("bridge", returns_result(old))
    cni.add_network_list(netlist("1.0.0"), RT)
    assert fake.calls[1].stdin["prevResult"] == old


@pytest.mark.parametrize(
    ("rt", "error", "message"),
    [
        (RuntimeConf("", "/run/netns/x", "eth0"), UnknownContainer, "missing containerID"),
        (RuntimeConf("bad id", "/run/netns/x", "eth0"), InvalidEnvironment, "invalid characters in containerID"),
        (RuntimeConf("ctr1", "/run/netns/x", "a/b"), InvalidEnvironment, "interface name contains"),
        (RuntimeConf("ctr1", "/run/netns/x", "x" * 16), InvalidEnvironment, "interface name is too long"),
    ],
)
def test_add_validates_identifiers_before_running_anything(
    cni: CniConfig, fake: FakeExec, rt: RuntimeConf, error: type[CniError], message: str
) -> None:
    with pytest.raises(error, match=message):
        cni.add_network_list(netlist(), rt)
    assert fake.calls == []


def test_add_failure_keeps_the_plugins_code_and_message_and_does_not_roll_back(
    cni: CniConfig, fake: FakeExec, tmp_path: Path
) -> None:
    fake.register("tuning", fail_on("ADD", TryAgainLater("upstream not ready", "retry in 5s")))
    with pytest.raises(PluginError) as err:
        cni.add_network_list(netlist(), RT)
    e = err.value
    assert e.code == 11
    assert e.msg == 'plugin type="tuning" name="dbnet" failed (add): upstream not ready'
    assert e.details == "retry in 5s"
    assert str(e) == 'plugin type="tuning" name="dbnet" failed (add): upstream not ready; retry in 5s'
    assert (e.plugin_type, e.network, e.command) == ("tuning", "dbnet", "add")
    assert isinstance(e.cause, TryAgainLater) and e.cause.msg == "upstream not ready"
    assert e.to_wire() == {"code": 11, "msg": e.msg, "details": "retry in 5s"}
    # No rollback: nothing but the two ADDs ran, and nothing was cached.
    assert fake.commands() == [("bridge", "ADD"), ("tuning", "ADD")]
    assert not cache_file(tmp_path).exists()


def test_add_missing_plugin_is_wrapped(cni: CniConfig, fake: FakeExec) -> None:
    conf = conflist_from_bytes(b'{"cniVersion":"1.0.0","name":"dbnet","plugins":[{"type":"nope"}]}')
    with pytest.raises(PluginError) as err:
        cni.add_network_list(conf, RT)
    assert isinstance(err.value.cause, PluginNotFound)
    assert err.value.msg.startswith('plugin type="nope" name="dbnet" failed (add): failed to find plugin "nope"')


def test_add_unparsable_result_is_wrapped(cni: CniConfig, fake: FakeExec) -> None:
    fake.register("bridge", returns_result({"cniVersion": "1.0.0", "ips": [{"address": "nonsense"}]}))
    with pytest.raises(PluginError) as err:
        cni.add_network_list(netlist("1.0.0"), RT)
    assert err.value.code == 6
    assert "ips[0].address" in err.value.msg


def test_add_without_plugins(cni: CniConfig) -> None:
    conf = conflist_from_bytes(b'{"cniVersion":"1.0.0","name":"dbnet"}', require_plugins=False)
    with pytest.raises(InvalidConfig, match="has no plugins"):
        cni.add_network_list(conf, RT)


def test_add_cache_write_failure(fake: FakeExec, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    cni = CniConfig(PATH, exec=fake, cache_dir=str(blocker))
    with pytest.raises(IOFailure, match='failed to set network "dbnet" cached result'):
        cni.add_network_list(netlist(), RT)


# --------------------------------------------------------------------------
# DEL
# --------------------------------------------------------------------------


def test_del_runs_in_reverse_with_the_cached_result(cni: CniConfig, fake: FakeExec, tmp_path: Path) -> None:
    conf = netlist()
    result = cni.add_network_list(conf, RT)
    fake.calls.clear()

    cni.del_network_list(conf, RT)

    assert fake.commands() == [("tuning", "DEL"), ("bridge", "DEL")]
    for call in fake.calls:
        assert call.stdin["prevResult"] == result.to_wire()  # the final result, not chained
        assert call.env["CNI_COMMAND"] == "DEL"
    assert fake.calls[0].stdin["runtimeConfig"] == {"mac": "00:11:22:33:44:66"}
    assert not cache_file(tmp_path).exists()


def test_del_converts_the_cached_result_to_the_list_version(cni: CniConfig, fake: FakeExec) -> None:
    cni.add_network_list(netlist("1.1.0"), RT)
    fake.calls.clear()
    cni.del_network_list(netlist("0.4.0"), RT)
    prev = fake.calls[0].stdin["prevResult"]
    assert prev["cniVersion"] == "0.4.0"
    assert prev["ips"][0]["version"] == "4"


def test_del_tolerates_a_corrupt_cache(cni: CniConfig, fake: FakeExec, tmp_path: Path) -> None:
    path = cache_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("")  # what a crash mid-write used to leave behind
    cni.del_network_list(netlist(), RT)
    assert fake.commands() == [("tuning", "DEL"), ("bridge", "DEL")]
    assert all("prevResult" not in c.stdin for c in fake.calls)
    assert not path.exists()


def test_del_without_cache(cni: CniConfig, fake: FakeExec) -> None:
    cni.del_network_list(netlist(), RT)
    assert fake.commands() == [("tuning", "DEL"), ("bridge", "DEL")]
    assert all("prevResult" not in c.stdin for c in fake.calls)


def test_del_before_0_4_0_sends_no_prev_result_but_drops_the_cache(
    cni: CniConfig, fake: FakeExec, tmp_path: Path
) -> None:
    fake.register(
        "bridge", returns_result({"cniVersion": "0.3.1", "ips": [{"version": "4", "address": "10.1.0.5/16"}]})
    )
    conf = netlist("0.3.1")
    cni.add_network_list(conf, RT)
    fake.calls.clear()
    cni.del_network_list(conf, RT)
    assert fake.commands() == [("tuning", "DEL"), ("bridge", "DEL")]
    assert all("prevResult" not in c.stdin for c in fake.calls)
    assert not cache_file(tmp_path).exists()


def test_del_failure_stops_wraps_and_keeps_the_cache(cni: CniConfig, fake: FakeExec, tmp_path: Path) -> None:
    conf = netlist()
    cni.add_network_list(conf, RT)
    fake.register("tuning", fail_on("DEL", CniError("iptables locked", code=120)))
    fake.calls.clear()
    with pytest.raises(PluginError) as err:
        cni.del_network_list(conf, RT)
    assert err.value.code == 120
    assert err.value.msg == 'plugin type="tuning" name="dbnet" failed (delete): iptables locked'
    assert err.value.command == "delete"
    assert fake.commands() == [("tuning", "DEL")]
    assert cache_file(tmp_path).exists()  # a retried DEL gets the same prevResult


def test_del_does_not_validate_identifiers(cni: CniConfig, fake: FakeExec) -> None:
    cni.del_network_list(netlist(), RuntimeConf("", "", "eth0"))
    assert fake.calls[0].env["CNI_CONTAINERID"] == ""


# --------------------------------------------------------------------------
# CHECK
# --------------------------------------------------------------------------


def test_check_forward_with_cached_result(cni: CniConfig, fake: FakeExec) -> None:
    conf = netlist()
    result = cni.add_network_list(conf, RT)
    fake.calls.clear()
    cni.check_network_list(conf, RT)
    assert fake.commands() == [("bridge", "CHECK"), ("tuning", "CHECK")]
    assert all(c.stdin["prevResult"] == result.to_wire() for c in fake.calls)


def test_check_needs_0_4_0(cni: CniConfig, fake: FakeExec) -> None:
    with pytest.raises(IncompatibleVersion) as err:
        cni.check_network_list(netlist("0.3.1"), RT)
    assert err.value.msg == 'configuration version "0.3.1" does not support the CHECK command'
    assert fake.calls == []


def test_check_disabled(cni: CniConfig, fake: FakeExec) -> None:
    cni.check_network_list(netlist(disableCheck=True), RT)
    assert fake.calls == []


def test_check_stops_at_the_first_error_naming_the_plugin(cni: CniConfig, fake: FakeExec) -> None:
    conf = netlist()
    cni.add_network_list(conf, RT)
    fake.register("bridge", fail_on("CHECK", CniError("eth0 has no address 10.1.0.5/16", "want it", code=999)))
    fake.calls.clear()
    with pytest.raises(PluginError) as err:
        cni.check_network_list(conf, RT)
    assert err.value.code == 999
    assert err.value.msg == 'plugin type="bridge" name="dbnet" failed (check): eth0 has no address 10.1.0.5/16'
    assert err.value.details == "want it"
    assert err.value.cause.msg == "eth0 has no address 10.1.0.5/16"
    assert fake.commands() == [("bridge", "CHECK")]


def test_check_with_corrupt_cache_fails(cni: CniConfig, fake: FakeExec, tmp_path: Path) -> None:
    path = cache_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("{broken")
    with pytest.raises(WrappedError, match='failed to get network "dbnet" cached result'):
        cni.check_network_list(netlist(), RT)
    assert fake.calls == []


def test_check_without_cache_omits_prev_result(cni: CniConfig, fake: FakeExec) -> None:
    cni.check_network_list(netlist(), RT)
    assert fake.commands() == [("bridge", "CHECK"), ("tuning", "CHECK")]
    assert all("prevResult" not in c.stdin for c in fake.calls)


# --------------------------------------------------------------------------
# STATUS
# --------------------------------------------------------------------------


def test_status_before_1_1_0_is_a_no_op(cni: CniConfig, fake: FakeExec) -> None:
    cni.get_status_network_list(netlist("1.0.0"))
    assert fake.calls == []


def test_status_asks_each_plugin_with_only_name_and_version(cni: CniConfig, fake: FakeExec) -> None:
    cni.get_status_network_list(netlist())
    assert fake.commands() == [("bridge", "STATUS"), ("tuning", "STATUS")]
    tuning = fake.calls[1]
    assert tuning.stdin == {
        "type": "tuning",
        "capabilities": {"mac": True, "bandwidth": True},
        "cniVersion": "1.1.0",
        "name": "dbnet",
    }
    assert tuning.env["CNI_CONTAINERID"] == tuning.env["CNI_NETNS"] == tuning.env["CNI_IFNAME"] == ""
    assert tuning.env["CNI_PATH"] == os.pathsep.join(PATH)


def test_status_returns_the_first_error_unwrapped(cni: CniConfig, fake: FakeExec) -> None:
    fake.register("bridge", fail_on("STATUS", PluginNotAvailable("no IPs left in 10.1.0.0/16")))
    with pytest.raises(PluginNotAvailable) as err:
        cni.get_status_network_list(netlist())
    assert (err.value.code, err.value.msg) == (50, "no IPs left in 10.1.0.0/16")
    assert fake.commands() == [("bridge", "STATUS")]


# --------------------------------------------------------------------------
# GC
# --------------------------------------------------------------------------


def _attach(cni: CniConfig, conf: NetConfList, container_id: str, **kw: Any) -> RuntimeConf:
    rt = RuntimeConf(container_id, f"/run/netns/{container_id}", "eth0", **kw)
    cni.add_network_list(conf, rt)
    return rt


def test_gc_deletes_stale_attachments_and_sends_both_keys(cni: CniConfig, fake: FakeExec, tmp_path: Path) -> None:
    conf = netlist()
    _attach(cni, conf, "ctr1")
    _attach(cni, conf, "ctr2", args=(("K8S_POD_NAME", "web"),), capability_args={"mac": "00:00:00:00:00:02"})
    _attach(cni, netlist(name="othernet"), "ctr3")
    fake.calls.clear()

    cni.gc_network_list(conf, [Attachment("ctr1", "eth0")])

    assert fake.commands() == [("tuning", "DEL"), ("bridge", "DEL"), ("bridge", "GC"), ("tuning", "GC")]
    stale_del = fake.calls[0]
    assert stale_del.env["CNI_CONTAINERID"] == "ctr2"
    assert stale_del.env["CNI_NETNS"] == "/run/netns/ctr2"
    assert stale_del.env["CNI_ARGS"] == "K8S_POD_NAME=web"
    assert stale_del.stdin["runtimeConfig"] == {"mac": "00:00:00:00:00:02"}
    assert "prevResult" in stale_del.stdin
    for gc in fake.calls[2:]:
        valid = [{"containerID": "ctr1", "ifname": "eth0"}]
        assert gc.stdin["cni.dev/valid-attachments"] == valid
        assert gc.stdin["cni.dev/attachments"] == valid
        assert "runtimeConfig" not in gc.stdin and "prevResult" not in gc.stdin
        assert gc.env["CNI_CONTAINERID"] == "" and gc.env["CNI_COMMAND"] == "GC"
    assert sorted(os.listdir(tmp_path / "results")) == ["dbnet-ctr1-eth0", "othernet-ctr3-eth0"]


def test_gc_without_valid_set_deletes_everything_of_the_network(cni: CniConfig, fake: FakeExec) -> None:
    conf = netlist()
    _attach(cni, conf, "ctr1")
    _attach(cni, conf, "ctr2")
    fake.calls.clear()
    cni.gc_network_list(conf, None)
    assert [c.env["CNI_CONTAINERID"] for c in fake.calls if c.command == "DEL"] == ["ctr1", "ctr1", "ctr2", "ctr2"]
    gcs = [c for c in fake.calls if c.command == "GC"]
    assert len(gcs) == 2
    assert all("cni.dev/valid-attachments" not in c.stdin and "cni.dev/attachments" not in c.stdin for c in gcs)
    assert cni.get_cached_attachments() == []


def test_gc_with_empty_valid_set_sends_empty_lists(cni: CniConfig, fake: FakeExec) -> None:
    cni.gc_network_list(netlist(), [])
    assert fake.commands() == [("bridge", "GC"), ("tuning", "GC")]
    assert all(c.stdin["cni.dev/valid-attachments"] == [] for c in fake.calls)


def test_gc_disabled(cni: CniConfig, fake: FakeExec) -> None:
    conf = netlist(disableGC=True)
    _attach(cni, conf, "ctr1")
    fake.calls.clear()
    cni.gc_network_list(conf, [])
    assert fake.calls == []


def test_gc_before_1_1_0_only_deletes_stale_attachments(cni: CniConfig, fake: FakeExec) -> None:
    fake.register("bridge", returns_result({**BRIDGE_RESULT, "cniVersion": "1.0.0"}))
    conf = netlist("1.0.0")
    _attach(cni, conf, "ctr1")
    fake.calls.clear()
    cni.gc_network_list(conf, [])
    assert fake.commands() == [("tuning", "DEL"), ("bridge", "DEL")]


def test_gc_keeps_going_and_reports_every_error(cni: CniConfig, fake: FakeExec, tmp_path: Path) -> None:
    conf = netlist()
    _attach(cni, conf, "ctr1")
    _attach(cni, conf, "ctr2")
    fake.register(
        "tuning",
        fail_on("DEL", CniError("cannot delete", code=120), then=fail_on("GC", CniError("gc broke", code=120))),
    )
    fake.calls.clear()

    with pytest.raises(GcError) as err:
        cni.gc_network_list(conf, [])

    errors = err.value.errors
    assert [e.msg for e in errors] == [
        'failed to delete stale attachment ctr1 eth0: plugin type="tuning" name="dbnet" failed (delete): cannot delete',
        'failed to delete stale attachment ctr2 eth0: plugin type="tuning" name="dbnet" failed (delete): cannot delete',
        'plugin type="tuning" name="dbnet" failed (gc): gc broke',
    ]
    assert err.value.code == 120  # all agree
    assert ("bridge", "GC") in fake.commands()  # kept going after the failures
    assert "gc broke" in str(err.value) and "ctr2" in str(err.value)


def test_gc_error_code_is_999_when_errors_disagree(cni: CniConfig, fake: FakeExec) -> None:
    fake.register("bridge", fail_on("GC", CniError("a", code=120)))
    fake.register("tuning", fail_on("GC", CniError("b", code=121)))
    with pytest.raises(GcError) as err:
        cni.gc_network_list(netlist(), [])
    assert err.value.code == 999
    assert len(err.value.errors) == 2


# --------------------------------------------------------------------------
# VERSION / validation
# --------------------------------------------------------------------------


def test_get_version_info_probes_with_dummy_env(cni: CniConfig, fake: FakeExec) -> None:
    fake.register("old", passes_through, supported_versions=["0.3.1", "0.4.0"])
    info = cni.get_version_info("old")
    assert info.supported_versions == ("0.3.1", "0.4.0")
    (call,) = fake.calls
    assert call.command == "VERSION"
    assert call.stdin == {"cniVersion": "1.1.0"}
    assert (call.env["CNI_NETNS"], call.env["CNI_IFNAME"], call.env["CNI_PATH"]) == ("dummy", "dummy", "dummy")


def test_get_version_info_of_a_plugin_older_than_version(cni: CniConfig, fake: FakeExec) -> None:
    fake.register("ancient", fail_on("VERSION", InvalidEnvironment("unknown CNI_COMMAND: VERSION")))
    assert cni.get_version_info("ancient").supported_versions == ("0.1.0",)


def test_validate_returns_enabled_capabilities(cni: CniConfig, fake: FakeExec) -> None:
    conf = conflist_from_bytes(
        json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": "dbnet",
                "plugins": [
                    {"type": "bridge", "capabilities": {"mac": True, "ips": False}},
                    {"type": "tuning", "capabilities": {"mac": True, "portMappings": True}},
                ],
            }
        ).encode()
    )
    assert cni.validate_network_list(conf) == ["mac", "portMappings"]


def test_validate_collects_all_problems(cni: CniConfig, fake: FakeExec) -> None:
    fake.register("bridge", passes_through, supported_versions=["0.4.0", "1.0.0"])
    conf = conflist_from_bytes(
        b'{"cniVersion":"1.1.0","name":"dbnet","plugins":[{"type":"bridge"},{"type":"missing"},{"type":"tuning"}]}'
    )
    with pytest.raises(ValidationError) as err:
        cni.validate_network_list(conf)
    assert [e.msg for e in err.value.errors] == [
        'plugin bridge does not support config version "1.1.0"',
        f'failed to find plugin "missing" in path [{" ".join(PATH)}]',
    ]


# --------------------------------------------------------------------------
# cache queries
# --------------------------------------------------------------------------


def test_cached_result_absent(cni: CniConfig) -> None:
    assert cni.get_network_list_cached_result(netlist(), RT) is None
    assert cni.get_network_list_cached_config(netlist(), RT) is None


def test_cached_config_restores_args(cni: CniConfig) -> None:
    conf = netlist()
    cni.add_network_list(conf, RT)
    got = cni.get_network_list_cached_config(conf, RuntimeConf("ctr1", "/run/netns/x", "eth0"))
    assert got is not None
    config, rt = got
    assert config == conf.raw_bytes
    assert rt == RT


def test_cached_attachments(cni: CniConfig) -> None:
    conf = netlist()
    _attach(cni, conf, "ctr1", args=(("A", "1"),))
    _attach(cni, conf, "ctr2")
    attachments = cni.get_cached_attachments()
    assert [(a.container_id, a.network, a.ifname) for a in attachments] == [
        ("ctr1", "dbnet", "eth0"),
        ("ctr2", "dbnet", "eth0"),
    ]
    (only,) = cni.get_cached_attachments("ctr1")
    assert only.config == conf.raw_bytes
    assert only.runtime_conf() == RuntimeConf("ctr1", "/run/netns/ctr1", "eth0", (("A", "1"),))
