"""pycni.plugins.steps: undo of a failed ADD, DEL/GC attempts, the container's addresses (no root)."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import ip_interface
from typing import Any

import pytest

from pycni.plugins.steps import (
    Attempts,
    UndoStack,
    container_addresses,
    delete_container_link_with_addresses,
    undone_on_failure,
)
from pycni.spec.errors import CniError, DecodingFailure, InvalidConfig
from pycni.spec.result import Interface, IPConfig, Result


def test_undo_stack_runs_newest_first_and_reraises_the_body_error(capsys: pytest.CaptureFixture[str]) -> None:
    ran: list[str] = []

    def broken() -> None:
        ran.append("masquerade")
        raise OSError("rules are busy")

    with pytest.raises(ValueError, match="the real error"), UndoStack() as undo:
        undo.push("delete veth 'veth1'", lambda: ran.append("veth"))
        undo.push("remove IP masquerade", broken)
        undo.push("remove the spoof check", lambda: ran.append("spoofcheck"))
        raise ValueError("the real error")
    assert ran == ["spoofcheck", "masquerade", "veth"]  # a failing undo does not stop the others
    assert capsys.readouterr().err == "pycni: failed to remove IP masquerade after a failed ADD: rules are busy\n"


def test_undo_stack_does_nothing_when_the_body_succeeds() -> None:
    ran: list[str] = []
    with UndoStack() as undo:
        undo.push("delete veth", lambda: ran.append("veth"))
    assert ran == []


def test_undo_stack_also_undoes_on_keyboard_interrupt() -> None:
    ran: list[str] = []
    with pytest.raises(KeyboardInterrupt), UndoStack() as undo:
        undo.push("delete veth", lambda: ran.append("veth"))
        raise KeyboardInterrupt
    assert ran == ["veth"]


def test_undone_on_failure_is_a_stack_of_one(capsys: pytest.CaptureFixture[str]) -> None:
    ran: list[str] = []
    with undone_on_failure(lambda: ran.append("undone"), "delete link 'eth0'"):
        pass
    assert ran == []
    with pytest.raises(CniError, match="boom"), undone_on_failure(lambda: ran.append("undone"), "delete link 'eth0'"):
        raise CniError("boom")
    assert ran == ["undone"] and capsys.readouterr().err == ""


def test_attempts_run_every_step_and_raise_the_first_error() -> None:
    attempt = Attempts()
    ran: list[str] = []

    def step(name: str, error: CniError | None = None) -> str:
        ran.append(name)
        if error is not None:
            raise error
        return name.upper()

    assert attempt(step, "ipam", InvalidConfig("ipam failed")) is None
    assert attempt(step, "link") == "LINK"
    assert attempt(step, "masquerade", DecodingFailure("masquerade failed")) is None
    assert ran == ["ipam", "link", "masquerade"]
    with pytest.raises(InvalidConfig, match="ipam failed"):
        attempt.raise_first()


def test_attempts_without_errors_raise_nothing() -> None:
    attempt = Attempts()
    attempt(lambda: None)
    attempt.raise_first()


def test_attempts_let_bugs_through() -> None:
    def bug() -> None:
        raise TypeError("not a CNI error")

    with pytest.raises(TypeError):
        Attempts()(bug)


@dataclass
class FakeArgs:
    """What container_addresses and delete_container_link_with_addresses read of CmdArgs."""

    prev: Result | None = None
    error: CniError | None = None
    ifname: str = "eth0"
    netns: str = "/run/netns/pod"
    calls: list[Any] = field(default_factory=list)

    def prev_result(self) -> Result | None:
        if self.error is not None:
            raise self.error
        return self.prev


HOST = Interface(name="veth1234abcd", mac="02:00:00:00:00:01")
POD = Interface(name="eth0", mac="02:00:00:00:00:02", sandbox="/run/netns/pod")


def addresses(args: FakeArgs) -> list[str]:
    return [str(a) for a in container_addresses(args)]  # type: ignore[arg-type]


def test_container_addresses_are_those_of_the_container_interface() -> None:
    prev = Result(
        "1.0.0",
        interfaces=(HOST, POD),
        ips=(
            IPConfig(ip_interface("10.1.0.5/24"), interface=1),
            IPConfig(ip_interface("10.9.0.1/32"), interface=0),  # the host end's
            IPConfig(ip_interface("fd00::5/64"), interface=1),
        ),
    )
    assert addresses(FakeArgs(prev)) == ["10.1.0.5/24", "fd00::5/64"]


def test_an_ip_without_interface_counts_as_the_containers() -> None:
    # Per the spec an IP without ``interface`` is tied to no interface; portmap and sbr read it as the container's.
    prev = Result("1.0.0", interfaces=(HOST, POD), ips=(IPConfig(ip_interface("10.1.0.5/24")),))
    assert addresses(FakeArgs(prev)) == ["10.1.0.5/24"]
    legacy = Result("0.2.0", ips=(IPConfig(ip_interface("10.1.0.6/24")),))  # no interfaces at all
    assert addresses(FakeArgs(legacy)) == ["10.1.0.6/24"]


def test_the_container_interface_is_the_one_with_a_sandbox() -> None:
    host_named_like_pod = Interface(name="eth0")
    prev = Result(
        "1.0.0",
        interfaces=(host_named_like_pod, POD),
        ips=(IPConfig(ip_interface("10.9.0.1/32"), interface=0), IPConfig(ip_interface("10.1.0.5/24"), interface=1)),
    )
    assert addresses(FakeArgs(prev)) == ["10.1.0.5/24"]
    assert addresses(FakeArgs(prev, netns="")) == ["10.1.0.5/24"]  # found without CNI_NETNS too


def test_no_container_interface_leaves_only_unbound_ips() -> None:
    prev = Result(
        "1.0.0",
        interfaces=(HOST, POD),
        ips=(IPConfig(ip_interface("10.1.0.5/24"), interface=1), IPConfig(ip_interface("10.2.0.5/24"))),
    )
    assert addresses(FakeArgs(prev, ifname="net1")) == ["10.2.0.5/24"]


@pytest.mark.parametrize("args", [FakeArgs(), FakeArgs(error=DecodingFailure("prevResult: bad"))])
def test_no_readable_prev_result_means_no_addresses(args: FakeArgs) -> None:
    assert addresses(args) == []


def test_delete_without_netns_is_nothing_to_do() -> None:
    assert delete_container_link_with_addresses(FakeArgs(netns="")) == (False, [])  # type: ignore[arg-type]
