"""How the firewall plugin holds its host lock: shared for a SHARED_LOCK backend's ADD and DEL, exclusive otherwise."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Collection, Iterator
from typing import Any

import pytest

from pycni import skel
from pycni.plugins.firewall import plugin as fw_plugin
from pycni.plugins.firewall.backend import Attachment, SharedChainsMissing
from pycni.registry import load_plugin

PREV = {"cniVersion": "1.0.0", "interfaces": [{"name": "cni0"}, {"name": "veth1"}],
        "ips": [{"address": "10.1.2.3/24"}]}
ENV = {"CNI_CONTAINERID": "ctr", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0", "CNI_PATH": "/bin"}


class SharingBackend:
    SHARED_LOCK = True

    def __init__(self, log: list[str], chains_missing: bool) -> None:
        self.log = log
        self.chains_missing = chains_missing

    def add(self, att: Attachment, *, shared: bool = False) -> None:
        if shared and self.chains_missing:
            self.log.append("add: shared chains missing")
            raise SharedChainsMissing("test")
        self.log.append(f"add shared={shared}")

    def check(self, att: Attachment) -> None: ...

    def delete(self, att: Attachment) -> None:
        self.log.append("delete")

    def gc(self, network: str, valid: Collection[tuple[str, str]]) -> None:
        self.log.append("gc")

    def prune_bridges(self, keep: Callable[[str], bool]) -> None:
        self.log.append(f"prune keeps cni0: {keep('cni0')}")


@pytest.fixture
def log() -> list[str]:
    return []


def install(monkeypatch: pytest.MonkeyPatch, log: list[str], *, chains_missing: bool = False,
            bridges: Callable[[str], bool] = lambda name: True) -> None:
    @contextlib.contextmanager
    def recording_lock(name: str, *, shared: bool = False) -> Iterator[None]:
        log.append(f"lock {'shared' if shared else 'exclusive'}")
        try:
            yield
        finally:
            log.append("unlock")

    backend = SharingBackend(log, chains_missing)
    monkeypatch.setattr(fw_plugin, "make_backend", lambda name, admin: backend)
    monkeypatch.setattr(fw_plugin, "host_lock", recording_lock)
    monkeypatch.setattr(fw_plugin, "_bridge_present", bridges)


def call(command: str, **config: Any) -> skel.Outcome:
    stdin = {"cniVersion": "1.0.0", "name": "net", "type": "firewall", "backend": "iptables", "prevResult": PREV,
             **config}
    return skel.dispatch(load_plugin("firewall"), {**ENV, "CNI_COMMAND": command}, json.dumps(stdin).encode())


def test_add_holds_the_lock_shared(monkeypatch: pytest.MonkeyPatch, log: list[str]) -> None:
    install(monkeypatch, log)
    assert call("ADD").exit_code == 0
    assert log == ["lock shared", "add shared=True", "unlock"]


def test_an_add_that_must_make_shared_chains_runs_again_exclusively(monkeypatch: pytest.MonkeyPatch,
                                                                      log: list[str]) -> None:
    install(monkeypatch, log, chains_missing=True)
    assert call("ADD").exit_code == 0
    assert log == ["lock shared", "add: shared chains missing", "unlock", "lock exclusive", "add shared=False",
                   "unlock"]


def test_del_holds_the_lock_shared(monkeypatch: pytest.MonkeyPatch, log: list[str]) -> None:
    install(monkeypatch, log)
    assert call("DEL", ingressPolicy="isolated").exit_code == 0
    assert log == ["lock shared", "delete", "unlock"]


def test_del_prunes_a_gone_bridge_under_the_exclusive_lock_after_asking_again(monkeypatch: pytest.MonkeyPatch,
                                                                              log: list[str]) -> None:
    answers = iter([False, False])  # gone when DEL looks, still gone under the exclusive lock
    install(monkeypatch, log, bridges=lambda name: next(answers))
    assert call("DEL", ingressPolicy="isolated").exit_code == 0
    assert log == ["lock shared", "delete", "unlock", "lock exclusive", "prune keeps cni0: False", "unlock"]


def test_no_prune_when_the_bridge_came_back_before_the_exclusive_lock(monkeypatch: pytest.MonkeyPatch,
                                                                      log: list[str]) -> None:
    answers = iter([False, True])  # an ADD made the bridge again in between
    install(monkeypatch, log, bridges=lambda name: next(answers))
    assert call("DEL", ingressPolicy="isolated").exit_code == 0
    assert log == ["lock shared", "delete", "unlock", "lock exclusive", "unlock"]


def test_gc_holds_the_lock_exclusively(monkeypatch: pytest.MonkeyPatch, log: list[str]) -> None:
    install(monkeypatch, log)
    stdin = {"cniVersion": "1.1.0", "name": "net", "type": "firewall", "backend": "iptables",
             "cni.dev/valid-attachments": []}
    out = skel.dispatch(load_plugin("firewall"), {**ENV, "CNI_COMMAND": "GC"}, json.dumps(stdin).encode())
    assert out.exit_code == 0, out.stdout
    assert log[0] == "lock exclusive" and "gc" in log
