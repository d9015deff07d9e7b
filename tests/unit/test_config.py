"""Network configuration: parsing, validation messages, and the request config sent to plugins."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pycni.spec.config import (
    NetConfList,
    PluginConf,
    conflist_from_bytes,
    conflist_from_conf,
    plugin_conf_from_bytes,
    request_config,
    runtime_config_for,
)
from pycni.spec.errors import DecodingFailure, IncompatibleVersion, InvalidConfig


def doc(**overrides: Any) -> bytes:
    base: dict[str, Any] = {
        "cniVersion": "1.1.0",
        "name": "dbnet",
        "plugins": [
            {"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local", "subnet": "10.1.0.0/16"}},
            {"type": "tuning", "capabilities": {"mac": True}, "sysctl": {"net.core.somaxconn": "500"}},
        ],
    }
    base.update(overrides)
    return json.dumps({k: v for k, v in base.items() if v is not ...}).encode()


# --------------------------------------------------------------------------
# conflist parsing
# --------------------------------------------------------------------------


def test_conflist_fields() -> None:
    data = doc(disableCheck=True, disableGC="TRUE", loadOnlyInlinedPlugins="false")
    conf = conflist_from_bytes(data)
    assert conf.name == "dbnet"
    assert conf.cni_version == "1.1.0"
    assert conf.cni_versions == ()
    assert conf.disable_check is True
    assert conf.disable_gc is True
    assert conf.load_only_inlined_plugins is False
    assert conf.raw_bytes == data
    assert [p.type for p in conf.plugins] == ["bridge", "tuning"]
    assert conf.negotiated_version == "1.1.0"


def test_plugin_properties_and_unknown_keys_preserved() -> None:
    bridge, tuning = conflist_from_bytes(doc()).plugins
    assert bridge.ipam_type == "host-local"
    assert bridge.capabilities == {}
    assert bridge.raw["bridge"] == "cni0"
    assert tuning.ipam_type == ""
    assert tuning.capabilities == {"mac": True}
    assert tuning.raw["sysctl"] == {"net.core.somaxconn": "500"}
    assert tuning.cni_version == "" and tuning.name == ""


def test_plugin_raw_is_read_only() -> None:
    plugin = conflist_from_bytes(doc()).plugins[0]
    with pytest.raises(TypeError):
        plugin.raw["type"] = "other"  # type: ignore[index]


def test_defaults() -> None:
    conf = conflist_from_bytes(doc(cniVersion=...))
    assert conf.cni_version == ""
    assert conf.negotiated_version == ""
    assert (conf.disable_check, conf.disable_gc, conf.load_only_inlined_plugins) == (False, False, False)


@pytest.mark.parametrize(
    ("versions", "expected"),
    [
        (["0.4.0", "1.0.0"], "1.1.0"),  # cniVersion itself is a candidate
        (["1.0.0", "9.9.9"], "1.1.0"),  # newer than we support: dropped
    ],
)
def test_negotiated_version(versions: list[str], expected: str) -> None:
    assert conflist_from_bytes(doc(cniVersions=versions)).negotiated_version == expected


def test_negotiated_version_picks_highest_of_list() -> None:
    conf = conflist_from_bytes(doc(cniVersion="0.3.1", cniVersions=["1.0.0", "0.4.0"]))
    assert conf.negotiated_version == "1.0.0"


def test_no_usable_version_is_an_error_at_parse_time() -> None:
    with pytest.raises(IncompatibleVersion):
        conflist_from_bytes(doc(cniVersion=..., cniVersions=["2.0.0"]))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": ...}, "name: missing"),
        ({"name": 3}, "name: expected a string, got 3"),
        ({"name": ""}, "name: missing network name"),
        ({"name": "bad name"}, "name: invalid characters found in network name"),
        ({"cniVersion": 1}, "cniVersion: expected a string, got 1"),
        ({"cniVersion": "one"}, "cniVersion: 'one' is not a version"),
        ({"cniVersions": "1.0.0"}, "cniVersions: expected a list, got '1.0.0'"),
        ({"cniVersions": ["1.x"]}, "cniVersions[0]: '1.x' is not a version"),
        ({"cniVersions": ["1.0.0", 2]}, "cniVersions[1]: expected a string, got 2"),
        ({"disableCheck": 3}, "disableCheck: expected a boolean, got 3"),
        ({"disableGC": "yes"}, "disableGC: expected a boolean, got 'yes'"),
        ({"loadOnlyInlinedPlugins": None}, "loadOnlyInlinedPlugins: expected a boolean, got null"),
        ({"plugins": ...}, "plugins: must be a non-empty list"),
        ({"plugins": []}, "plugins: must be a non-empty list"),
        ({"plugins": {"type": "x"}}, "plugins: must be a non-empty list"),
        ({"plugins": ..., "loadOnlyInlinedPlugins": True}, "plugins: missing, and loadOnlyInlinedPlugins is true"),
        ({"plugins": [{"type": "a"}, {"bridge": "x"}]}, "plugins[1].type: missing"),
        ({"plugins": [{"type": ""}]}, "plugins[0].type: missing"),
        ({"plugins": [{"type": 5}]}, "plugins[0].type: expected a string, got 5"),
        ({"plugins": ["bridge"]}, "plugins[0]: expected an object, got 'bridge'"),
        ({"plugins": [{"type": "a", "capabilities": []}]}, "plugins[0].capabilities: expected an object"),
        ({"plugins": [{"type": "a", "capabilities": {"mac": 1}}]}, "plugins[0].capabilities.mac: expected a boolean"),
        ({"plugins": [{"type": "a", "ipam": "host-local"}]}, "plugins[0].ipam: expected an object"),
        ({"plugins": [{"type": "a", "ipam": {"type": 1}}]}, "plugins[0].ipam.type: expected a string, got 1"),
        ({"plugins": [{"type": "a", "dns": []}]}, "plugins[0].dns: expected an object"),
    ],
)
def test_validation_messages_name_the_field(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidConfig) as err:
        conflist_from_bytes(doc(**overrides))
    assert err.value.code == 7
    assert err.value.msg.startswith(message)


def test_plugins_may_come_from_elsewhere_when_asked() -> None:
    conf = conflist_from_bytes(doc(plugins=...), require_plugins=False)
    assert conf.plugins == ()


@pytest.mark.parametrize("data", [b"{", b"", b"\xff\xfe", b'{"name": NaN}'])
def test_bad_json_is_a_decoding_failure(data: bytes) -> None:
    with pytest.raises(DecodingFailure) as err:
        conflist_from_bytes(data)
    assert err.value.code == 6


def test_non_object_is_a_decoding_failure() -> None:
    with pytest.raises(DecodingFailure, match="expected a JSON object, got a list"):
        conflist_from_bytes(b"[1]")


# --------------------------------------------------------------------------
# single plugin configs
# --------------------------------------------------------------------------


def test_plugin_conf_from_bytes() -> None:
    plugin = plugin_conf_from_bytes(b'{"cniVersion":"0.4.0","name":"old","type":"bridge","x":1}')
    assert (plugin.type, plugin.name, plugin.cni_version, plugin.raw["x"]) == ("bridge", "old", "0.4.0", 1)


def test_plugin_conf_needs_type() -> None:
    with pytest.raises(InvalidConfig, match=r"^type: missing"):
        plugin_conf_from_bytes(b'{"name":"old"}')


def test_conflist_from_conf_promotes_to_one_element_list() -> None:
    plugin = plugin_conf_from_bytes(b'{"cniVersion":"0.4.0","name":"old","type":"bridge","x":1}')
    conf = conflist_from_conf(plugin)
    assert (conf.name, conf.cni_version, conf.plugins) == ("old", "0.4.0", (plugin,))
    # what gets cached reads back as a conflist
    assert conflist_from_bytes(conf.raw_bytes) == conf


def test_conflist_from_conf_keeps_given_bytes() -> None:
    raw = b'{"cniVersion":"0.4.0","name":"old","type":"bridge"}'
    conf = conflist_from_conf(plugin_conf_from_bytes(raw), raw)
    assert conf.raw_bytes == raw


def test_conflist_from_conf_validates_name() -> None:
    with pytest.raises(InvalidConfig, match="name: missing network name"):
        conflist_from_conf(plugin_conf_from_bytes(b'{"type":"bridge"}'))


# --------------------------------------------------------------------------
# request config
# --------------------------------------------------------------------------


def tuning() -> PluginConf:
    return conflist_from_bytes(doc()).plugins[1]


def test_request_config_overwrites_name_and_version_and_passes_the_rest() -> None:
    plugin = PluginConf({"type": "x", "name": "own", "cniVersion": "0.3.1", "custom": {"a": [1, 2]}})
    out = json.loads(request_config(plugin, name="net", cni_version="1.0.0"))
    assert out == {"type": "x", "name": "net", "cniVersion": "1.0.0", "custom": {"a": [1, 2]}}


def test_request_config_full() -> None:
    prev = {"cniVersion": "1.1.0", "ips": [{"address": "10.1.0.5/16"}]}
    out = json.loads(
        request_config(
            tuning(), name="dbnet", cni_version="1.1.0", prev_result=prev, runtime_config={"mac": "00:11:22:33:44:66"}
        )
    )
    assert out["prevResult"] == prev
    assert out["runtimeConfig"] == {"mac": "00:11:22:33:44:66"}
    assert out["capabilities"] == {"mac": True}  # libcni leaves it in
    assert out["sysctl"] == {"net.core.somaxconn": "500"}


def test_request_config_omits_empty_runtime_config_and_absent_prev_result() -> None:
    out = json.loads(request_config(tuning(), name="dbnet", cni_version="1.1.0", runtime_config={}))
    assert "runtimeConfig" not in out
    assert "prevResult" not in out


def test_request_config_merges_extra_keys() -> None:
    attachments = [{"containerID": "abc", "ifname": "eth0"}]
    extra = {"cni.dev/valid-attachments": attachments, "cni.dev/attachments": attachments}
    out = json.loads(request_config(tuning(), name="dbnet", cni_version="1.1.0", extra=extra))
    assert out["cni.dev/valid-attachments"] == attachments
    assert out["cni.dev/attachments"] == attachments


def test_request_config_does_not_touch_the_plugin() -> None:
    plugin = tuning()
    before = dict(plugin.raw)
    request_config(plugin, name="other", cni_version="0.4.0", prev_result={"cniVersion": "0.4.0"})
    assert dict(plugin.raw) == before


def test_runtime_config_only_declared_and_provided_capabilities() -> None:
    plugin = PluginConf({"type": "x", "capabilities": {"portMappings": True, "mac": True, "bandwidth": False}})
    offered = {"portMappings": [{"hostPort": 80}], "bandwidth": {"ingressRate": 1}, "ips": ["10.0.0.1/24"]}
    assert runtime_config_for(plugin, offered) == {"portMappings": [{"hostPort": 80}]}
    assert runtime_config_for(PluginConf({"type": "x"}), offered) == {}


def test_netconflist_is_a_value() -> None:
    a = conflist_from_bytes(doc())
    b = conflist_from_bytes(doc())
    assert a == b
    assert isinstance(a, NetConfList)
