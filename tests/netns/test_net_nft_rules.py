"""nft_rules encodes a masquerade rule exactly as nft does: the kernel's dump of each is byte for byte the same."""

from __future__ import annotations

from ipaddress import ip_interface

import pytest

from pycni.net.firewall import masquerade, nft, nft_dump, nft_rules
from tests.support.netns import Netns

# whole-byte prefixes are compared on their bytes, others through a mask; /0 and full length are edge cases
CASES = ["10.0.0.5/16", "10.0.16.5/20", "10.0.0.5/8", "10.0.0.5/32", "10.0.0.5/0",
         "fd00::5/64", "fd00::5/61", "fd00::5/128", "fd00::5/0"]


def _both_ways(case: str) -> tuple[bytes, bytes, list[str]]:
    nft.apply_json(masquerade.nft_setup_commands([], "n", "eth0", "c"))
    address, comment = ip_interface(case), "t" * 128  # nft's longest comment
    nft.apply_json([masquerade._masq_rule(address, comment)])
    theirs = nft_dump.chain_expressions("inet", masquerade.TABLE, masquerade.MASQ_CHAIN)[-1]
    nft_rules.add_rules("inet", masquerade.TABLE, masquerade.MASQ_CHAIN,
                        [nft_rules.masquerade_rule(address.ip, address.network, comment)])
    ours = nft_dump.chain_expressions("inet", masquerade.TABLE, masquerade.MASQ_CHAIN)[-1]
    comments = [c for _, c in nft_dump.rule_comments("inet", masquerade.TABLE, masquerade.MASQ_CHAIN)]
    nft.apply(f"delete table inet {masquerade.TABLE}")
    return ours, theirs, comments


@pytest.mark.parametrize("case", CASES)
def test_masquerade_rule_is_encoded_as_nft_encodes_it(hostns: Netns, case: str) -> None:
    ours, theirs, comments = hostns.call(_both_ways, case)
    assert ours == theirs
    assert comments == ["t" * 128] * 2


def _delete_and_add() -> tuple[list[str], str]:
    nft.apply_json(masquerade.nft_setup_commands([], "n", "eth0", "c"))
    a, b = ip_interface("10.0.0.5/24"), ip_interface("10.0.0.6/24")
    nft_rules.add_rules("inet", masquerade.TABLE, masquerade.MASQ_CHAIN,
                        [nft_rules.masquerade_rule(a.ip, a.network, "a")])
    [(handle, _)] = nft_dump.rule_comments("inet", masquerade.TABLE, masquerade.MASQ_CHAIN)
    nft_rules.add_rules("inet", masquerade.TABLE, masquerade.MASQ_CHAIN,
                        [nft_rules.masquerade_rule(b.ip, b.network, "b")], delete_handles=[handle])
    after = [c for _, c in nft_dump.rule_comments("inet", masquerade.TABLE, masquerade.MASQ_CHAIN)]
    try:  # the deleted handle again: the whole batch is refused, its rule not added
        nft_rules.add_rules("inet", masquerade.TABLE, masquerade.MASQ_CHAIN,
                            [nft_rules.masquerade_rule(a.ip, a.network, "c")], delete_handles=[handle])
        refused = ""
    except nft.NftError as exc:
        refused = str(exc)
    after_refusal = [c for _, c in nft_dump.rule_comments("inet", masquerade.TABLE, masquerade.MASQ_CHAIN)]
    assert after_refusal == after
    return after, refused


def test_stale_rules_go_and_new_ones_come_in_one_transaction(hostns: Netns) -> None:
    after, refused = hostns.call(_delete_and_add)
    assert after == ["b"]
    assert refused.startswith("failed to add rules to inet cni_plugins_masquerade masq_checks: ")
