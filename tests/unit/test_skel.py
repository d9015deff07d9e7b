"""skel.dispatch: the plugin side of the protocol, driven in-process with a fake plugin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import ip_address, ip_interface, ip_network
from pathlib import Path
from typing import Any

import pytest

from pycni import skel
from pycni.skel import CmdArgs, Outcome, Plugin, dispatch
from pycni.spec.errors import (
    CniError,
    DecodingFailure,
    InvalidConfig,
    LimitedConnectivity,
    PluginNotAvailable,
    TryAgainLater,
    UnsupportedField,
)
from pycni.spec.result import DNS, Interface, IPConfig, Result, Route, dumps
from pycni.spec.version import CURRENT_VERSION, SUPPORTED_VERSIONS

REPO_ROOT = Path(__file__).resolve().parents[2]

RESULT = Result(
    "1.1.0",
    interfaces=(
        Interface("cni0", mac="46:2f:8a:11:22:33"),
        Interface("eth0", mac="9a:1b:2c:3d:4e:5f", mtu=1500, sandbox="/var/run/netns/test"),
    ),
    ips=(IPConfig(ip_interface("10.1.0.5/16"), ip_address("10.1.0.1"), interface=1),),
    routes=(Route(ip_network("0.0.0.0/0"), ip_address("10.1.0.1"), priority=10),),
    dns=DNS(nameservers=("10.1.0.1",)),
)

BASE_ENV = {
    "CNI_CONTAINERID": "ctr1",
    "CNI_NETNS": "/var/run/netns/test",
    "CNI_IFNAME": "eth0",
    "CNI_PATH": "/opt/cni/bin:/usr/lib/cni",
}


@dataclass
class FakePlugin:
    """Handlers that record the CmdArgs they got; each may be told to raise."""

    result: Any = RESULT
    raises: dict[str, BaseException] = field(default_factory=dict)
    calls: list[tuple[str, CmdArgs]] = field(default_factory=list)
    hook: Callable[[CmdArgs], Any] | None = None  # runs inside every handler

    def _handle(self, name: str, args: CmdArgs) -> None:
        self.calls.append((name, args))
        if self.hook is not None:
            self.hook(args)
        if name in self.raises:
            raise self.raises[name]

    def add(self, args: CmdArgs) -> Result:
        self._handle("ADD", args)
        return self.result  # type: ignore[no-any-return]

    def delete(self, args: CmdArgs) -> None:
        self._handle("DEL", args)

    def check(self, args: CmdArgs) -> None:
        self._handle("CHECK", args)

    def status(self, args: CmdArgs) -> None:
        self._handle("STATUS", args)

    def gc(self, args: CmdArgs) -> None:
        self._handle("GC", args)

    def plugin(self, *, optional: bool = True, **kwargs: Any) -> Plugin:
        extra: dict[str, Any] = {"status": self.status, "gc": self.gc} if optional else {}
        return Plugin(name="fake", add=self.add, delete=self.delete, check=self.check, **extra, **kwargs)

    @property
    def commands(self) -> list[str]:
        return [name for name, _ in self.calls]

    @property
    def last(self) -> CmdArgs:
        return self.calls[-1][1]


def config(version: str = "1.1.0", /, **extra: Any) -> dict[str, Any]:
    return {"cniVersion": version, "name": "testnet", "type": "fake", **extra}


def run(
    fake: FakePlugin,
    command: str | None,
    conf: dict[str, Any] | bytes | None = None,
    *,
    env: Mapping[str, str | None] | None = None,
    plugin: Plugin | None = None,
    **kwargs: Any,
) -> Outcome:
    environ = dict(BASE_ENV)
    if command is not None:
        environ["CNI_COMMAND"] = command
    for key, value in (env or {}).items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    stdin = conf if isinstance(conf, bytes) else json.dumps(config() if conf is None else conf).encode()
    return dispatch(plugin or fake.plugin(), environ, stdin, **kwargs)


def error(outcome: Outcome) -> dict[str, Any]:
    """The error object of a failed run; checks the protocol's framing on the way."""
    assert outcome.exit_code == 1
    assert b"Traceback" not in outcome.stdout
    assert outcome.stdout == dumps(json.loads(outcome.stdout))  # Go MarshalIndent layout
    body: dict[str, Any] = json.loads(outcome.stdout)
    return body


# -- environment -----------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "missing"),
    [
        ("ADD", "CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH"),
        ("CHECK", "CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH"),
        ("DEL", "CNI_CONTAINERID,CNI_IFNAME,CNI_PATH"),
        ("GC", "CNI_PATH"),
        ("STATUS", "CNI_PATH"),
    ],
)
def test_every_missing_variable_is_reported_at_once(command: str, missing: str) -> None:
    fake = FakePlugin()
    env = {name: None for name in BASE_ENV}
    body = error(run(fake, command, env=env))
    # No cniVersion: stdin is not read before the environment is complete.
    assert body == {"code": 4, "msg": f"required env variables [{missing}] missing"}
    assert fake.calls == []


def test_empty_variable_counts_as_missing() -> None:
    body = error(run(FakePlugin(), "ADD", env={"CNI_NETNS": "", "CNI_PATH": ""}))
    assert body == {"code": 4, "msg": "required env variables [CNI_NETNS,CNI_PATH] missing"}


def test_missing_command_without_about_is_code_4() -> None:
    body = error(run(FakePlugin(), None))
    assert body == {"code": 4, "msg": "required env variables [CNI_COMMAND] missing"}


def test_missing_command_prints_about_on_stderr() -> None:
    read: list[bool] = []

    def reader() -> bytes:
        read.append(True)
        return b""

    plugin = FakePlugin().plugin(about="CNI fake plugin v1.2.3", versions=("0.4.0", "1.0.0"))
    outcome = dispatch(plugin, {}, reader)
    assert outcome == Outcome(0, b"", b"CNI fake plugin v1.2.3\nCNI protocol versions supported: 0.4.0, 1.0.0\n")
    assert read == []  # a bare run from a terminal must not wait for input


@pytest.mark.parametrize("command", ["FOO", "add", "Version"])
def test_unknown_command(command: str) -> None:
    fake = FakePlugin()
    body = error(run(fake, command))
    assert body == {"code": 4, "msg": f"unknown CNI_COMMAND: {command}"}
    assert fake.calls == []


def test_stdin_reader_is_called_once_env_is_complete_and_its_oserror_is_code_5() -> None:
    def broken() -> bytes:
        raise OSError(5, "Input/output error")

    outcome = dispatch(FakePlugin().plugin(), {**BASE_ENV, "CNI_COMMAND": "ADD"}, broken)
    body = error(outcome)
    assert body["code"] == 5
    assert body["msg"].startswith("error reading from stdin: ")

    fake = FakePlugin()
    outcome = dispatch(fake.plugin(), {**BASE_ENV, "CNI_COMMAND": "DEL"}, lambda: json.dumps(config()).encode())
    assert outcome == Outcome(0, b"")
    assert fake.commands == ["DEL"]


# -- VERSION ---------------------------------------------------------------


def test_version_echoes_a_supported_request_version() -> None:
    outcome = run(FakePlugin(), "VERSION", {"cniVersion": "0.4.0"}, env={name: None for name in BASE_ENV})
    expected = {"cniVersion": "0.4.0", "supportedVersions": list(SUPPORTED_VERSIONS)}
    assert outcome == Outcome(0, json.dumps(expected, separators=(",", ":")).encode() + b"\n")


@pytest.mark.parametrize("stdin", [b"", b"not json", b"[]", b'{"cniVersion": 7}', b'{"cniVersion": "9.9.9"}'])
def test_version_ignores_unusable_stdin(stdin: bytes) -> None:
    plugin = FakePlugin().plugin(versions=("0.3.1", "0.4.0"))
    outcome = run(FakePlugin(), "VERSION", stdin, plugin=plugin)
    assert outcome.exit_code == 0
    assert json.loads(outcome.stdout) == {"cniVersion": CURRENT_VERSION, "supportedVersions": ["0.3.1", "0.4.0"]}
    assert outcome.stdout.endswith(b"]}\n")


def test_version_stdin_reader_failure_is_ignored() -> None:
    def broken() -> bytes:
        raise OSError("boom")

    outcome = dispatch(FakePlugin().plugin(), {"CNI_COMMAND": "VERSION"}, broken)
    assert outcome.exit_code == 0
    assert json.loads(outcome.stdout)["cniVersion"] == CURRENT_VERSION


# -- the request config ----------------------------------------------------


@pytest.mark.parametrize(
    "stdin",
    [
        b"",
        b"   \n",
        b"{not json",
        b"[1, 2]",
        b'"text"',
        b"null",
        b'{"name": "n", "mtu": NaN}',
        b"\xff\xfe\xfd",
        b"[" * 100_000,
    ],
)
def test_undecodable_config_is_code_6(stdin: bytes) -> None:
    fake = FakePlugin()
    body = error(run(fake, "ADD", stdin))
    assert body["code"] == 6
    assert body["msg"].startswith("error unmarshall network config: ")
    assert fake.calls == []


@pytest.mark.parametrize("key", ["name", "cniVersion"])
def test_non_string_name_or_version_is_code_6(key: str) -> None:
    body = error(run(FakePlugin(), "ADD", config(**{key: 42})))
    assert body["code"] == 6
    assert repr(key) in body["msg"]


@pytest.mark.parametrize(
    ("conf", "msg"),
    [
        ({"cniVersion": "1.1.0", "type": "fake"}, "missing network name"),
        (config(name=""), "missing network name"),
        (config(name=None), "missing network name"),
        (config(name="my net"), "invalid characters found in network name"),
        (config(name="../etc"), "invalid characters found in network name"),
    ],
)
def test_missing_or_invalid_name_is_code_7(conf: dict[str, Any], msg: str) -> None:
    fake = FakePlugin()
    body = error(run(fake, "DEL", conf))
    assert body["code"] == 7
    assert body["msg"] == msg
    assert fake.calls == []


@pytest.mark.parametrize(
    ("env", "msg"),
    [
        ({"CNI_CONTAINERID": "a b"}, "invalid characters in containerID"),
        ({"CNI_CONTAINERID": "-leading-dash"}, "invalid characters in containerID"),
        ({"CNI_IFNAME": "a-very-long-ifname"}, "interface name is too long"),
        ({"CNI_IFNAME": "eth/0"}, "interface name contains / or : or whitespace characters"),
        ({"CNI_IFNAME": ".."}, "interface name is . or .."),
    ],
)
@pytest.mark.parametrize("command", ["ADD", "CHECK", "DEL"])
def test_bad_container_id_or_ifname_is_code_4(command: str, env: dict[str, str], msg: str) -> None:
    fake = FakePlugin()
    body = error(run(fake, command, env=env))
    assert body["code"] == 4
    assert body["msg"] == msg
    assert body["cniVersion"] == "1.1.0"
    assert fake.calls == []


@pytest.mark.parametrize("command", ["GC", "STATUS"])
def test_gc_and_status_do_not_look_at_attachment_variables(command: str) -> None:
    fake = FakePlugin()
    env = {"CNI_CONTAINERID": "a b", "CNI_IFNAME": "eth/0", "CNI_NETNS": None}
    outcome = run(fake, command, env=env, is_own_netns=lambda path: True)
    assert outcome == Outcome(0, b"")
    assert fake.commands == [command]


# -- versions --------------------------------------------------------------


def test_unsupported_version_is_code_1_with_details() -> None:
    fake = FakePlugin()
    plugin = fake.plugin(versions=("0.3.1", "0.4.0"))
    body = error(run(fake, "ADD", config("9.9.9"), plugin=plugin))
    assert body == {
        "cniVersion": "9.9.9",
        "code": 1,
        "msg": "incompatible CNI versions",
        "details": 'config is "9.9.9", plugin supports ["0.3.1", "0.4.0"]',
    }
    assert fake.calls == []


@pytest.mark.parametrize("version", ["1.0.0", "", "abc", "1.0.0.0"])
def test_version_outside_plugin_versions_is_code_1(version: str) -> None:
    fake = FakePlugin()
    plugin = fake.plugin(versions=("0.3.1", "0.4.0"))
    body = error(run(fake, "DEL", config(version), plugin=plugin))
    assert body["code"] == 1
    assert body["msg"] == "incompatible CNI versions"


@pytest.mark.parametrize(
    ("command", "version"),
    [("CHECK", "0.3.1"), ("CHECK", "0.1.0"), ("STATUS", "1.0.0"), ("GC", "1.0.0"), ("GC", "0.4.0")],
)
def test_command_gated_by_config_version(command: str, version: str) -> None:
    fake = FakePlugin()
    body = error(run(fake, command, config(version)))
    assert body == {"cniVersion": version, "code": 1, "msg": f"config version does not allow {command}"}
    assert fake.calls == []


def test_check_at_0_4_0_is_allowed() -> None:
    fake = FakePlugin()
    assert run(fake, "CHECK", config("0.4.0")) == Outcome(0, b"")
    assert fake.commands == ["CHECK"]
    assert fake.last.cni_version == "0.4.0"


@pytest.mark.parametrize("command", ["STATUS", "GC"])
def test_status_and_gc_without_handler_succeed_at_1_1_0(command: str) -> None:
    fake = FakePlugin()
    assert run(fake, command, plugin=fake.plugin(optional=False)) == Outcome(0, b"")
    assert fake.calls == []
    body = error(run(fake, command, config("1.0.0"), plugin=fake.plugin(optional=False)))
    assert body["msg"] == f"config version does not allow {command}"


# -- ADD output ------------------------------------------------------------


def test_add_prints_result_in_1_1_0() -> None:
    fake = FakePlugin()
    outcome = run(fake, "ADD", config("1.1.0"))
    assert outcome.exit_code == 0
    assert outcome.stdout == dumps(RESULT.to_wire("1.1.0"))
    assert not outcome.stdout.endswith(b"\n")
    assert json.loads(outcome.stdout) == {
        "cniVersion": "1.1.0",
        "interfaces": [
            {"name": "cni0", "mac": "46:2f:8a:11:22:33"},
            {"name": "eth0", "mac": "9a:1b:2c:3d:4e:5f", "mtu": 1500, "sandbox": "/var/run/netns/test"},
        ],
        "ips": [{"interface": 1, "address": "10.1.0.5/16", "gateway": "10.1.0.1"}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1", "priority": 10}],
        "dns": {"nameservers": ["10.1.0.1"]},
    }


def test_add_prints_result_in_0_4_0() -> None:
    outcome = run(FakePlugin(), "ADD", config("0.4.0"))
    assert outcome.exit_code == 0
    assert json.loads(outcome.stdout) == {
        "cniVersion": "0.4.0",
        "interfaces": [
            {"name": "cni0", "mac": "46:2f:8a:11:22:33"},
            {"name": "eth0", "mac": "9a:1b:2c:3d:4e:5f", "sandbox": "/var/run/netns/test"},
        ],
        "ips": [{"version": "4", "interface": 1, "address": "10.1.0.5/16", "gateway": "10.1.0.1"}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}],
        "dns": {"nameservers": ["10.1.0.1"]},
    }


def test_add_prints_result_in_0_2_0() -> None:
    outcome = run(FakePlugin(), "ADD", config("0.2.0"))
    assert outcome.exit_code == 0
    assert json.loads(outcome.stdout) == {
        "cniVersion": "0.2.0",
        "ip4": {"ip": "10.1.0.5/16", "gateway": "10.1.0.1", "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}]},
        "dns": {"nameservers": ["10.1.0.1"]},
    }


def test_add_result_that_cannot_be_rendered_is_code_1() -> None:
    fake = FakePlugin(result=Result("1.1.0", interfaces=(Interface("eth0"),)))
    body = error(run(fake, "ADD", config("0.2.0")))
    assert body["code"] == 1
    assert body["cniVersion"] == "0.2.0"
    assert body["msg"] == "cannot convert: no valid IP addresses"


def test_add_handler_returning_something_else_is_internal_error() -> None:
    body = error(run(FakePlugin(result={"cniVersion": "1.1.0"}), "ADD"))
    assert body["code"] == 999
    assert "not a Result" in body["msg"]


@pytest.mark.parametrize("command", ["DEL", "CHECK", "STATUS", "GC"])
def test_other_commands_print_nothing(command: str) -> None:
    fake = FakePlugin()
    assert run(fake, command) == Outcome(0, b"")
    assert fake.commands == [command]


# -- what handlers see -----------------------------------------------------


def test_cmd_args_carry_the_invocation() -> None:
    fake = FakePlugin()
    conf = config(runtimeConfig={"portMappings": [{"hostPort": 80}]}, args={"cni": {"ips": ["10.0.0.9"]}})
    stdin = json.dumps(conf).encode()
    env = {"CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=web", "CNI_PATH": "/opt/cni/bin::/usr/lib/cni", "OTHER": "x"}
    run(fake, "ADD", stdin, env=env)
    args = fake.last
    assert args.command == "ADD"
    assert (args.container_id, args.netns, args.ifname) == ("ctr1", "/var/run/netns/test", "eth0")
    assert args.args == "IgnoreUnknown=1;K8S_POD_NAME=web"
    assert args.path == ("/opt/cni/bin", "/usr/lib/cni")
    assert args.stdin_data == stdin
    assert args.config == conf
    assert args.environ["OTHER"] == "x"
    assert args.environ["CNI_COMMAND"] == "ADD"
    assert args.cni_version == "1.1.0"
    assert args.network_name == "testnet"
    assert args.runtime_config == {"portMappings": [{"hostPort": 80}]}
    assert args.cni_args().take({"K8S_POD_NAME"}) == {"K8S_POD_NAME": "web"}
    assert args.prev_result() is None
    assert args.valid_attachments() == ()


def test_environ_is_a_snapshot() -> None:
    fake = FakePlugin()
    environ = {**BASE_ENV, "CNI_COMMAND": "DEL"}
    dispatch(fake.plugin(), environ, json.dumps(config()).encode())
    environ["CNI_IFNAME"] = "changed"
    assert fake.last.environ["CNI_IFNAME"] == "eth0"


def test_runtime_config_defaults_and_type() -> None:
    assert CmdArgs("ADD", config={"runtimeConfig": None}).runtime_config == {}
    assert CmdArgs("ADD").runtime_config == {}
    with pytest.raises(InvalidConfig, match="runtimeConfig"):
        _ = CmdArgs("ADD", config={"runtimeConfig": [1]}).runtime_config


def test_bad_cni_args_is_code_4_from_the_handler() -> None:
    fake = FakePlugin(hook=lambda args: args.cni_args())
    body = error(run(fake, "ADD", env={"CNI_ARGS": "IP=1.2.3.4;broken"}))
    assert body["code"] == 4
    assert "broken" in body["msg"]


PREV_0_4_0 = {
    "cniVersion": "0.4.0",
    "interfaces": [{"name": "eth0", "mac": "9a:1b:2c:3d:4e:5f", "sandbox": "/var/run/netns/test"}],
    "ips": [{"version": "4", "interface": 0, "address": "10.1.0.5/16", "gateway": "10.1.0.1"}],
    "routes": [{"dst": "0.0.0.0/0"}],
}


def test_prev_result_from_0_4_0_is_converted_to_current() -> None:
    seen: list[Result | None] = []
    fake = FakePlugin(hook=lambda args: seen.append(args.prev_result()))
    assert run(fake, "CHECK", config("0.4.0", prevResult=PREV_0_4_0)).exit_code == 0
    prev = seen[0]
    assert prev is not None
    assert prev.cni_version == CURRENT_VERSION
    assert prev.interfaces == (Interface("eth0", mac="9a:1b:2c:3d:4e:5f", sandbox="/var/run/netns/test"),)
    assert prev.ips == (IPConfig(ip_interface("10.1.0.5/16"), ip_address("10.1.0.1"), interface=0),)
    assert prev.routes == (Route(ip_network("0.0.0.0/0")),)
    assert fake.last.prev_result() is prev  # parsed once


def test_prev_result_without_version_is_read_in_the_config_version() -> None:
    seen: list[Result | None] = []
    fake = FakePlugin(hook=lambda args: seen.append(args.prev_result()))
    prev = {"ip4": {"ip": "10.1.0.5/16", "gateway": "10.1.0.1", "routes": [{"dst": "10.2.0.0/16"}]}}
    outcome = run(fake, "ADD", config("0.2.0", prevResult=prev))
    assert outcome.exit_code == 0
    assert seen[0] == Result(
        CURRENT_VERSION,
        ips=(IPConfig(ip_interface("10.1.0.5/16"), ip_address("10.1.0.1")),),
        routes=(Route(ip_network("10.2.0.0/16")),),
    )


@pytest.mark.parametrize(
    ("prev", "code", "prefix"),
    [
        ({**PREV_0_4_0, "ips": [{"version": "4", "address": "nope"}]}, 6, "prevResult.ips[0].address: "),
        ({**PREV_0_4_0, "dns": []}, 6, "prevResult.dns: "),
        ([1, 2], 6, "prevResult: must be an object"),
        ({"cniVersion": "7.0.0"}, 1, "prevResult: unsupported CNI result version"),
    ],
)
def test_bad_prev_result_names_the_field(prev: Any, code: int, prefix: str) -> None:
    fake = FakePlugin(hook=lambda args: args.prev_result())
    body = error(run(fake, "DEL", config("0.4.0", prevResult=prev)))
    assert body["code"] == code
    assert body["msg"].startswith(prefix)


@pytest.mark.parametrize("key", ["cni.dev/valid-attachments", "cni.dev/attachments"])
def test_gc_valid_attachments_under_either_key(key: str) -> None:
    seen: list[tuple[tuple[str, str], ...]] = []
    fake = FakePlugin(hook=lambda args: seen.append(args.valid_attachments()))
    attachments = [{"containerID": "ctr1", "ifname": "eth0"}, {"containerID": "ctr2", "ifname": "net1"}]
    outcome = run(fake, "GC", config(**{key: attachments}), env={"CNI_CONTAINERID": None, "CNI_IFNAME": None})
    assert outcome == Outcome(0, b"")
    assert seen == [(("ctr1", "eth0"), ("ctr2", "net1"))]


def test_gc_prefers_the_current_key() -> None:
    conf = config(
        **{
            "cni.dev/valid-attachments": [{"containerID": "new", "ifname": "eth0"}],
            "cni.dev/attachments": [{"containerID": "old", "ifname": "eth0"}],
        }
    )
    assert CmdArgs("GC", config=conf).valid_attachments() == (("new", "eth0"),)
    legacy_only = config(
        **{"cni.dev/valid-attachments": None, "cni.dev/attachments": [{"containerID": "old", "ifname": "e"}]}
    )
    assert CmdArgs("GC", config=legacy_only).valid_attachments() == (("old", "e"),)


@pytest.mark.parametrize(
    ("value", "field_name"),
    [
        ({"containerID": "c"}, "cni.dev/valid-attachments"),
        ([{"containerID": "c", "ifname": "eth0"}, "c2"], "cni.dev/valid-attachments[1]"),
        ([{"ifname": "eth0"}], "cni.dev/valid-attachments[0].containerID"),
        ([{"containerID": "c", "ifname": 3}], "cni.dev/valid-attachments[0].ifname"),
    ],
)
def test_malformed_valid_attachments_is_code_7_naming_the_field(value: Any, field_name: str) -> None:
    fake = FakePlugin(hook=lambda args: args.valid_attachments())
    body = error(run(fake, "GC", config(**{"cni.dev/valid-attachments": value})))
    assert body["code"] == 7
    assert body["msg"].startswith(f"{field_name}: ")


# -- errors from handlers --------------------------------------------------


@pytest.mark.parametrize(
    ("command", "exc", "code"),
    [
        ("ADD", InvalidConfig("ipam.subnet: '10.0.0.0/33' is not a CIDR"), 7),
        ("ADD", UnsupportedField("unsupported field 'foo'", "foo=1"), 2),
        ("DEL", TryAgainLater("lock busy"), 11),
        ("STATUS", PluginNotAvailable("dhcp daemon not running"), 50),
        ("STATUS", LimitedConnectivity("uplink down"), 51),
        ("CHECK", CniError("plugin specific", code=123), 123),
        ("GC", DecodingFailure("bad state file", "/var/lib/cni/x"), 6),
    ],
)
def test_cni_errors_keep_their_code(command: str, exc: CniError, code: int) -> None:
    fake = FakePlugin(raises={command: exc})
    body = error(run(fake, command))
    assert body == exc.to_wire("1.1.0")
    assert body["code"] == code
    assert body["cniVersion"] == "1.1.0"


def test_error_in_old_version_carries_that_version() -> None:
    fake = FakePlugin(raises={"DEL": InvalidConfig("bad")})
    assert error(run(fake, "DEL", config("0.3.1"))) == {"cniVersion": "0.3.1", "code": 7, "msg": "bad"}


@pytest.mark.parametrize(
    ("exc", "msg"),
    [
        (ValueError("subnet overlaps"), "subnet overlaps"),
        (RuntimeError(), "RuntimeError"),
        (KeyError("ipam"), "'ipam'"),
    ],
)
def test_unexpected_exception_is_999_without_traceback(exc: Exception, msg: str) -> None:
    outcome = run(FakePlugin(raises={"ADD": exc}), "ADD")
    assert error(outcome) == {"cniVersion": "1.1.0", "code": 999, "msg": msg}
    assert outcome.stderr == b""


def test_debug_puts_the_traceback_on_stderr_only() -> None:
    fake = FakePlugin(raises={"DEL": ValueError("subnet overlaps")})
    cases: list[tuple[dict[str, Any], dict[str, str]]] = [({"debug": True}, {}), ({}, {"PYCNI_DEBUG": "1"})]
    for kwargs, env in cases:
        outcome = run(fake, "DEL", env=env, **kwargs)
        assert error(outcome)["msg"] == "subnet overlaps"
        assert outcome.stderr.startswith(b"Traceback")
        assert b"ValueError: subnet overlaps" in outcome.stderr


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), SystemExit(3)])
def test_interrupts_are_not_swallowed(exc: BaseException) -> None:
    with pytest.raises(type(exc)):
        run(FakePlugin(raises={"ADD": exc}), "ADD")


# -- netns -----------------------------------------------------------------


def test_del_without_netns_is_allowed() -> None:
    def never(path: str) -> bool:
        raise AssertionError("netns check must be skipped without CNI_NETNS")

    fake = FakePlugin()
    assert run(fake, "DEL", env={"CNI_NETNS": None}, is_own_netns=never) == Outcome(0, b"")
    assert fake.last.netns == ""


@pytest.mark.parametrize("command", ["ADD", "CHECK", "DEL"])
def test_own_netns_is_refused(command: str) -> None:
    asked: list[str] = []

    def own(path: str) -> bool:
        asked.append(path)
        return True

    fake = FakePlugin()
    body = error(run(fake, command, is_own_netns=own))
    assert body["code"] == 8
    assert body["msg"] == 'netns "/var/run/netns/test" is the plugin\'s own network namespace'
    assert asked == ["/var/run/netns/test"]
    assert fake.calls == []


@pytest.mark.parametrize("override", ["1", "true", "TRUE", "True"])
def test_own_netns_override(override: str) -> None:
    fake = FakePlugin()
    outcome = run(fake, "ADD", env={"CNI_NETNS_OVERRIDE": override}, is_own_netns=lambda path: True)
    assert outcome.exit_code == 0
    assert fake.commands == ["ADD"]


@pytest.mark.parametrize("override", ["0", "false", "yes", ""])
def test_other_override_values_do_not_disable_the_check(override: str) -> None:
    body = error(run(FakePlugin(), "ADD", env={"CNI_NETNS_OVERRIDE": override}, is_own_netns=lambda path: True))
    assert body["code"] == 8


def test_other_netns_is_accepted() -> None:
    fake = FakePlugin()
    assert run(fake, "CHECK", is_own_netns=lambda path: False) == Outcome(0, b"")


def test_same_netns_helper(tmp_path: Path) -> None:
    assert skel._same_netns("/proc/self/ns/net")
    assert skel._same_netns(f"/proc/{os.getpid()}/ns/net")
    assert not skel._same_netns(str(tmp_path / "gone"))
    regular = tmp_path / "file"
    regular.write_text("")
    assert not skel._same_netns(str(regular))


def test_del_with_vanished_netns_succeeds_with_the_real_check(tmp_path: Path) -> None:
    fake = FakePlugin()
    outcome = run(fake, "DEL", env={"CNI_NETNS": str(tmp_path / "gone")}, is_own_netns=skel._same_netns)
    assert outcome == Outcome(0, b"")


def test_real_check_refuses_own_netns() -> None:
    outcome = run(FakePlugin(), "ADD", env={"CNI_NETNS": "/proc/self/ns/net"}, is_own_netns=skel._same_netns)
    assert error(outcome)["code"] == 8


# -- module hygiene --------------------------------------------------------


def test_public_api() -> None:
    assert sorted(skel.__all__) == ["CmdArgs", "Outcome", "Plugin", "dispatch", "main"]


def test_import_and_non_add_commands_do_not_load_result_or_ipaddress() -> None:
    code = """
import json, sys
from pycni.skel import Plugin, dispatch
assert "pycni.spec.result" not in sys.modules and "ipaddress" not in sys.modules, "import"
def fail(args):
    raise AssertionError
plugin = Plugin("lazy", add=fail, delete=lambda args: None, check=fail)
env = {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c", "CNI_IFNAME": "eth0", "CNI_PATH": "/x"}
out = dispatch(plugin, env, json.dumps({"cniVersion": "1.1.0", "name": "n"}).encode())
assert out.exit_code == 0, out
out = dispatch(plugin, {"CNI_COMMAND": "ADD"}, b"")
assert out.exit_code == 1, out
assert "pycni.spec.result" not in sys.modules and "ipaddress" not in sys.modules, "dispatch"
"""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    # -S: site-packages' .pth hooks may import ipaddress themselves; plugin shims run with -S too.
    subprocess.run([sys.executable, "-S", "-c", code], check=True, env=env, cwd=REPO_ROOT)
