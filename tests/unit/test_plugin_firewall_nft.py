"""firewall's nftables backend against a fake runner: what it reads and the commands it applies (no root).

The listing fixture (firewall_nft_table.json) is what a kernel listed after
ADD of ctr1 (10.1.0.5 and fd00::5, ingressPolicy isolated on cni0) and of
ctr2 (10.1.0.6, open); firewall_nft_add.txt is the transaction ctr1's ADD
applied to an empty host, one JSON command per line.
"""

from __future__ import annotations

import json
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest

from pycni.plugins.firewall.backend import Attachment
from pycni.plugins.firewall.nft_backend import NftBackend
from pycni.spec.errors import CniError

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TABLE = "table inet pycni-firewall"

CTR1 = Attachment("net1", "ctr1", "eth0", (ip_address("10.1.0.5"), ip_address("fd00::5")), "isolated", "cni0")
CTR2 = Attachment("net1", "ctr2", "eth0", (ip_address("10.1.0.6"),))


class FakeNft:
    """An nft runner that replays a fixed listing and records the transactions."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items
        self.listed: list[str] = []
        self.applied: list[list[dict[str, Any]]] = []

    def list_json(self, what: str) -> list[dict[str, Any]]:
        self.listed.append(what)
        return self.items

    def apply_json(self, commands: list[dict[str, Any]]) -> None:
        self.applied.append(commands)


def listing(keep: Any = lambda item: True) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads((FIXTURES / "firewall_nft_table.json").read_text())
    return [item for item in items if "rule" not in item or keep(item["rule"])]


def text(commands: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(command, sort_keys=True) + "\n" for command in commands)


def deleted(commands: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(c["delete"]["rule"]["chain"], c["delete"]["rule"]["handle"]) for c in commands]


def test_add_on_an_empty_host_is_one_transaction() -> None:
    fake = FakeNft([])
    NftBackend(fake).add(CTR1)
    assert fake.listed == [TABLE]
    (commands,) = fake.applied
    assert text(commands) == (FIXTURES / "firewall_nft_add.txt").read_text()


def test_repeated_add_replaces_the_attachments_rules_and_keeps_the_bridges() -> None:
    fake = FakeNft(listing())
    NftBackend(fake).add(CTR1)
    (commands,) = fake.applied
    golden = (FIXTURES / "firewall_nft_add.txt").read_text().splitlines(keepends=True)
    skeleton, allow = golden[:4], golden[4:8]  # the bridge's rules are there already: not added again
    replace = [("forward", 4), ("forward", 5), ("forward", 6), ("forward", 7)]
    assert text(commands[:4]) == "".join(skeleton)
    assert deleted(commands[4:8]) == replace
    assert text(commands[8:]) == "".join(allow)


def test_check_passes_on_the_listing_and_names_what_is_missing() -> None:
    NftBackend(FakeNft(listing())).check(CTR1)
    NftBackend(FakeNft(listing())).check(CTR2)
    without_saddr = listing(lambda rule: rule["handle"] != 7)
    with pytest.raises(CniError, match=r"rule for ip6 saddr fd00::5 tagged 'pycni/firewall/net1/ctr1/eth0' is missing"):
        NftBackend(FakeNft(without_saddr)).check(CTR1)
    no_isolation = listing(lambda rule: rule["chain"] != "isolation-stage-2")
    with pytest.raises(CniError, match="isolation rule for bridge 'cni0' missing from isolation-stage-2"):
        NftBackend(FakeNft(no_isolation)).check(CTR1)
    with pytest.raises(CniError, match="table inet pycni-firewall is missing"):
        NftBackend(FakeNft([])).check(CTR2)


def test_delete_removes_exactly_the_attachments_rules() -> None:
    fake = FakeNft(listing())
    NftBackend(fake).delete(CTR2)
    (commands,) = fake.applied
    assert deleted(commands) == [("forward", 11), ("forward", 12)]


def test_delete_of_the_last_rules_drops_the_table() -> None:
    fake = FakeNft(listing(lambda rule: rule.get("comment") == CTR2.tag))
    NftBackend(fake).delete(CTR2)
    assert fake.applied == [[{"delete": {"table": {"family": "inet", "name": "pycni-firewall"}}}]]


def test_delete_drops_a_table_left_without_rules_and_writes_nothing_when_there_is_none() -> None:
    empty = FakeNft(listing(lambda rule: False))
    NftBackend(empty).delete(CTR2)
    assert empty.applied == [[{"delete": {"table": {"family": "inet", "name": "pycni-firewall"}}}]]
    absent = FakeNft([])
    NftBackend(absent).delete(CTR2)
    assert absent.applied == []
    unknown = FakeNft(listing())
    NftBackend(unknown).delete(Attachment("net1", "ctr3", "eth0"))
    assert unknown.applied == []


def test_gc_removes_the_rules_of_attachments_not_valid() -> None:
    fake = FakeNft(listing())
    NftBackend(fake).gc("net1", [("ctr1", "eth0")])
    (commands,) = fake.applied
    assert deleted(commands) == [("forward", 11), ("forward", 12)]
    other = FakeNft(listing())
    NftBackend(other).gc("net2", [])
    assert other.applied == []


def test_prune_bridges_removes_the_isolation_rules_of_bridges_gone() -> None:
    fake = FakeNft(listing())
    NftBackend(fake).prune_bridges(lambda bridge: bridge != "cni0")
    (commands,) = fake.applied
    assert deleted(commands) == [("isolation-stage-1", 8), ("isolation-stage-1", 9), ("isolation-stage-2", 10)]
