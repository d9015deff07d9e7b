"""pycni.net.firewall.nft_dump against libnftables' listing of the same chain: handles and comments agree."""

from __future__ import annotations

from ipaddress import ip_interface

import pytest

from pycni.net.firewall import masquerade, nft, nft_dump
from tests.support.netns import Netns


def _libnftables_view() -> list[tuple[int, str]]:
    return [(int(r["handle"]), str(r.get("comment", ""))) for r in nft.rules("inet", masquerade.TABLE,
                                                                              masquerade.MASQ_CHAIN)]


def _fill_and_compare() -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    for i in range(40):
        masquerade.setup_masquerade([ip_interface(f"10.9.0.{i + 2}/24")], "dumpnet", "eth0", f"c{i}", "nftables")
    # a rule without a comment, and one whose comment is as long as nft allows (truncated by nft_comment)
    nft.apply_json([{"add": {"rule": {"family": "inet", "table": masquerade.TABLE, "chain": masquerade.MASQ_CHAIN,
                                      "expr": [{"accept": None}]}}}])
    masquerade.setup_masquerade([ip_interface("10.9.1.2/24")], "n" * 100, "eth0", "c" * 64, "nftables")
    masquerade.teardown_masquerade("dumpnet", "eth0", "c7")  # a gap in the handles
    return nft_dump.rule_comments("inet", masquerade.TABLE, masquerade.MASQ_CHAIN), _libnftables_view()


def test_rule_comments_agree_with_libnftables(hostns: Netns) -> None:
    dumped, listed = hostns.call(_fill_and_compare)
    assert dumped == listed
    assert len(dumped) == 41
    assert ("" in {comment for _, comment in dumped}) and max(len(c.encode()) for _, c in dumped) == 128


@pytest.mark.parametrize(("table", "chain"), [("pycni-no-such-table", "x"), (masquerade.TABLE, "no-such-chain")])
def test_a_missing_table_or_chain_is_empty(hostns: Netns, table: str, chain: str) -> None:
    def setup_then_dump() -> list[tuple[int, str]]:
        masquerade.setup_masquerade([ip_interface("10.9.0.2/24")], "dumpnet", "eth0", "c", "nftables")
        return nft_dump.rule_comments("inet", table, chain)

    assert hostns.call(setup_then_dump) == []


def test_a_dump_the_ruleset_changes_under_is_read_again_not_half_read(hostns: Netns) -> None:
    """Rules that stay put are in every dump, while other rules of the chain come and go meanwhile."""
    import threading

    stable = 600

    def fill() -> None:
        nft.apply("add table inet pycni-intr\nadd chain inet pycni-intr c\n" + "".join(
            f'add rule inet pycni-intr c ip saddr 10.7.{i // 250}.{i % 250 + 1} accept comment "stable-{i}"\n'
            for i in range(stable)))

    def churn(stop: threading.Event) -> None:
        while not stop.is_set():
            nft.apply('insert rule inet pycni-intr c ip daddr 10.8.0.1 accept comment "churn"\n')  # shifts every index
            handles = [h for h, c in nft_dump.rule_comments("inet", "pycni-intr", "c") if c == "churn"]
            nft_dump.delete_rules("inet", "pycni-intr", "c", handles)

    def dumps() -> list[int]:
        return [sum(1 for _, c in nft_dump.rule_comments("inet", "pycni-intr", "c") if c.startswith("stable-"))
                for _ in range(300)]

    hostns.call(fill)
    stop = threading.Event()
    churner = threading.Thread(target=hostns.call, args=(churn, stop))
    churner.start()
    try:
        seen = hostns.call(dumps)
    finally:
        stop.set()
        churner.join()
    assert set(seen) == {stable}
