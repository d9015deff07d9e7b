"""The policy agent on the in-memory KV: snapshot, watch-driven syncs, plugin requests over its socket."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pycni.plugins.netpol import AgentUnreachable, call_agent
from pycni.policy.agent import PolicyAgent
from pycni.policy.compile import pod_chain_name
from pycni.policy.endpoints import Endpoint, encode, endpoint_key
from pycni.policy.model import LabelSelector, Namespace, NetworkPolicy, Pod, labels_of
from pycni.policy.store import ObjectStore
from pycni.testing.kv import MemoryKV

DENY = NetworkPolicy("x", "deny", LabelSelector(), frozenset({"Ingress"}))


class Kernel:
    """Records every script the agent applies; can be told to refuse."""

    def __init__(self) -> None:
        self.scripts: list[str] = []
        self.refuse = False
        self.changed = threading.Condition()

    def apply(self, script: str) -> None:
        if self.refuse:
            raise RuntimeError("nft: refused")
        with self.changed:
            self.scripts.append(script)
            self.changed.notify_all()

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 2.0) -> str:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                found = [s for s in self.scripts if predicate(s)]
                if found:
                    return found[-1]
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"no script matched; got {self.scripts!r}"
                self.changed.wait(remaining)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[MemoryKV, Kernel, PolicyAgent, str]]:
    kv, kernel = MemoryKV(), Kernel()
    ObjectStore(kv).apply([Namespace("x", labels_of({"kubernetes.io/metadata.name": "x"}))])
    sock = str(tmp_path / "policy.sock")
    agent = PolicyAgent(kv, "n1", kernel.apply, socket_path=sock, netns_exists=lambda p: p != "/gone")
    agent.start()
    try:
        yield kv, kernel, agent, sock
    finally:
        agent.stop()
        kv.close()


def add_request(name: str, ip: str, cid: str = "c1") -> dict[str, object]:
    return {"op": "add", "namespace": "x", "name": name, "containerID": cid, "ifname": "eth0",
            "netns": "/run/netns/p", "ips": [ip]}


def test_start_replaces_the_whole_table(world: tuple[MemoryKV, Kernel, PolicyAgent, str]) -> None:
    _, kernel, _, _ = world
    assert kernel.scripts[0].startswith("add table inet pycni_policy\ndelete table inet pycni_policy\n")


def test_loaded_state_is_out_of_the_collectors_sweeps(world: tuple[MemoryKV, Kernel, PolicyAgent, str]) -> None:
    # A full collection walks every tracked object; the agent's state must not be among them after start.
    # The sync thread settles once the first table is in force: wait for it.
    _, _, agent, _ = world
    deadline = time.monotonic() + 2
    while gc.get_freeze_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    with agent._lock:  # settled under the lock: holding it, the freeze is complete
        assert gc.get_freeze_count() > 0
    tracked = gc.get_objects(generation=2)
    assert not any(o is agent.state or o is agent.compiler for o in tracked)


def seen(agent: PolicyAgent, policy_key: str) -> None:
    """Wait until the agent's watch delivered a policy (what a pod started later can count on)."""
    deadline = time.monotonic() + 2
    while policy_key not in agent.state.policies:
        assert time.monotonic() < deadline, f"the agent never saw {policy_key}"
        time.sleep(0.01)


def test_add_is_enforced_before_the_answer(world: tuple[MemoryKV, Kernel, PolicyAgent, str]) -> None:
    kv, kernel, agent, sock = world
    ObjectStore(kv).apply([DENY])
    seen(agent, "x/deny")
    answer = call_agent(sock, add_request("a", "10.244.1.10"), timeout=2)
    assert answer["ok"] is True
    # The answer came after the pod's chain and its map element were applied.
    assert any(f"{pod_chain_name('x/a', 'Ingress')}" in s and "10.244.1.10 : goto" in s for s in kernel.scripts)
    stored = kv.get(endpoint_key("/pycni", Endpoint("x", "a", "n1", (), "c1", "eth0")))
    assert stored is not None and b'"10.244.1.10"' in stored.value


def test_policy_applied_later_reaches_the_kernel_through_the_watch(
        world: tuple[MemoryKV, Kernel, PolicyAgent, str]) -> None:
    kv, kernel, _, sock = world
    assert call_agent(sock, add_request("a", "10.244.1.10"), timeout=2)["ok"]
    ObjectStore(kv).apply([DENY])
    kernel.wait_for(lambda s: "10.244.1.10 : goto" in s)


def test_label_change_of_a_pod_object_costs_an_incremental_sync(
        world: tuple[MemoryKV, Kernel, PolicyAgent, str]) -> None:
    kv, kernel, _, sock = world
    selective = NetworkPolicy("x", "web", LabelSelector(labels_of({"app": "web"})), frozenset({"Ingress"}))
    ObjectStore(kv).apply([selective, Pod("x", "a", labels_of({"app": "db"}))])
    assert call_agent(sock, add_request("a", "10.244.1.10"), timeout=2)["ok"]
    assert not any("10.244.1.10 : goto" in s for s in kernel.scripts)
    ObjectStore(kv).apply([Pod("x", "a", labels_of({"app": "web"}))])
    script = kernel.wait_for(lambda s: "10.244.1.10 : goto" in s)
    assert "delete table" not in script


def test_delete_removes_the_endpoint_and_its_rules(world: tuple[MemoryKV, Kernel, PolicyAgent, str]) -> None:
    kv, kernel, agent, sock = world
    ObjectStore(kv).apply([DENY])
    seen(agent, "x/deny")
    assert call_agent(sock, add_request("a", "10.244.1.10"), timeout=2)["ok"]
    assert call_agent(sock, {"op": "del", "containerID": "c1", "ifname": "eth0"}, timeout=2)["ok"]
    assert kernel.scripts[-1].startswith("delete element inet pycni_policy ingress_v4 { 10.244.1.10 }")
    assert kv.list_prefix("/pycni/endpoints/")[0] == []


def test_a_kernel_that_refuses_fails_the_add(world: tuple[MemoryKV, Kernel, PolicyAgent, str]) -> None:
    kv, kernel, agent, sock = world
    ObjectStore(kv).apply([DENY])
    seen(agent, "x/deny")
    kernel.refuse = True
    answer = call_agent(sock, add_request("a", "10.244.1.10"), timeout=2)
    assert answer == {"ok": False, "error": "policy not enforced: nft: refused"}


def test_bad_request_names_the_field(world: tuple[MemoryKV, Kernel, PolicyAgent, str]) -> None:
    _, _, _, sock = world
    answer = call_agent(sock, {"op": "add", "namespace": "x", "containerID": "c", "ifname": "eth0"}, timeout=2)
    assert answer == {"ok": False, "error": "name: must be a non-empty string"}


def test_no_agent_is_unreachable(tmp_path: Path) -> None:
    with pytest.raises(AgentUnreachable):
        call_agent(str(tmp_path / "none.sock"), {"op": "status"}, timeout=0.5)


def test_resync_sweeps_endpoints_whose_netns_is_gone(tmp_path: Path) -> None:
    kv, kernel = MemoryKV(), Kernel()
    gone = Endpoint("x", "old", "n1", ("10.244.1.99",), "c9", "eth0", netns="/gone")
    kv.create(endpoint_key("/pycni", gone), encode(gone))
    agent = PolicyAgent(kv, "n1", kernel.apply, resync_seconds=0.05, netns_exists=lambda p: p != "/gone")
    agent.start()
    try:
        deadline = time.monotonic() + 2
        while kv.list_prefix("/pycni/endpoints/")[0] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert kv.list_prefix("/pycni/endpoints/")[0] == []
    finally:
        agent.stop()


def test_ruleset_request_summarises_what_was_committed(world: tuple[MemoryKV, Kernel, PolicyAgent, str]) -> None:
    kv, _, agent, sock = world
    ObjectStore(kv).apply([DENY])
    seen(agent, "x/deny")
    assert call_agent(sock, add_request("a", "10.244.1.10"), timeout=2)["ok"] is True
    answer = call_agent(sock, {"op": "ruleset"}, timeout=2)
    assert answer["ok"] is True
    summary = answer["summary"]
    assert summary["chains"][pod_chain_name("x/a", "Ingress")] == 3  # jump to x/deny, NFLOG, drop
    assert summary["maps"]["ingress_v4"] == 1
