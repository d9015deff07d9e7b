"""A label change reaches the kernel as an nfnetlink element batch, and the table is then what was compiled."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import pytest

from pycni.net.firewall import nft
from pycni.net.netns import run_in_netns
from pycni.policy.compile import NodeView, compile_node
from pycni.policy.enforcer import Enforcer
from pycni.policy.model import Pod, labels_of
from pycni.policy.nftdiff import element_changes
from pycni.policy.node_service import apply_elements
from pycni.policy.table_audit import differences, kernel_summary, ruleset_summary
from tests.policy.test_table_audit_kernel import view
from tests.support.netns import Netns, netns_factory

pytestmark = pytest.mark.root


@pytest.fixture
def make_netns() -> Iterator[Callable[[], Netns]]:
    yield from netns_factory("pycni-elem-")


def relabelled(before: NodeView) -> NodeView:
    """Pod x/b is no longer app=db; a new app=db pod starts on another node."""
    pods = [dataclasses.replace(p, labels=labels_of({"app": "cache"})) if p.name == "b" else p for p in before.pods]
    pods.append(Pod("y", "d", labels_of({"app": "db"}), before.pods[0].ports, ("10.244.2.20", "fd00::20"), "n2"))
    return dataclasses.replace(before, pods=pods)


def test_a_label_change_is_written_without_libnftables_and_the_kernel_holds_the_compiled_sets(
        make_netns: Callable[[], Netns]) -> None:
    ns = make_netns()
    scripts: list[str] = []

    def script(text: str) -> None:
        scripts.append(text)
        run_in_netns(ns.path, nft.apply, text)

    enforcer = Enforcer(script, apply_elements=lambda changes: run_in_netns(ns.path, apply_elements, changes))
    first, second = compile_node(view()), compile_node(relabelled(view()))
    changes = element_changes(first, second)
    assert changes, "the relabelling must be an element-only change for this test to mean anything"
    enforcer.enforce(first)
    stats = enforcer.enforce(second)

    assert len(scripts) == 1  # the first, full load
    assert stats.kind == "partial" and stats.commands == sum(len(g) + len(c) for _, g, c in changes)
    listing = run_in_netns(ns.path, nft.list_json, "table inet pycni_policy")
    assert differences(ruleset_summary(second), kernel_summary(listing)) == []
    for s, _, _ in changes:
        found = run_in_netns(ns.path, nft.list_json, f"set inet pycni_policy {s.name}")
        elements = next(item["set"].get("elem", []) for item in found if "set" in item)
        rendered = {" . ".join(str(p) for p in e["concat"]) if isinstance(e, dict) else str(e) for e in elements}
        assert rendered == set(s.elements)


def test_a_batch_the_kernel_refuses_falls_back_to_the_script(make_netns: Callable[[], Netns]) -> None:
    ns = make_netns()
    scripts: list[str] = []

    def script(text: str) -> None:
        scripts.append(text)
        run_in_netns(ns.path, nft.apply, text)

    def refuse(changes: object) -> None:
        raise nft.NftError("refused")

    enforcer = Enforcer(script, apply_elements=refuse)
    enforcer.enforce(compile_node(view()))
    second = compile_node(relabelled(view()))
    assert enforcer.enforce(second).kind == "partial"
    assert len(scripts) == 2 and "element" in scripts[1]
    listing = run_in_netns(ns.path, nft.list_json, "table inet pycni_policy")
    assert differences(ruleset_summary(second), kernel_summary(listing)) == []
