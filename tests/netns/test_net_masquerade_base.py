"""masquerade's nftables ADD rewrites the shared base chain only when it is not as this process left it."""

from __future__ import annotations

from ipaddress import ip_interface

from pycni.net.firewall import masquerade, nft
from tests.support.netns import Netns


def _postrouting_handles() -> list[int]:
    return [int(rule["handle"]) for rule in nft.rules("inet", masquerade.TABLE, "postrouting")]


def _setups() -> tuple[list[int], list[int], list[int], int, int]:
    masquerade.setup_masquerade([ip_interface("10.9.0.2/24")], "basenet", "eth0", "c1", "nftables")
    first = _postrouting_handles()
    masquerade.setup_masquerade([ip_interface("10.9.0.3/24")], "basenet", "eth0", "c2", "nftables")
    second = _postrouting_handles()
    nft.apply(f"flush chain inet {masquerade.TABLE} postrouting")  # someone else's hand on the shared chain
    masquerade.setup_masquerade([ip_interface("10.9.0.4/24")], "basenet", "eth0", "c3", "nftables")
    third = _postrouting_handles()
    masq_rules = len(nft.rules("inet", masquerade.TABLE, masquerade.MASQ_CHAIN))
    missing = len(masquerade.missing_masquerade([ip_interface("10.9.0.3/24")], "basenet", "eth0", "c2"))
    return first, second, third, masq_rules, missing


def test_base_chain_is_rewritten_only_when_changed(hostns: Netns) -> None:
    first, second, third, masq_rules, missing = hostns.call(_setups)
    assert len(first) == 3 and second == first  # the second ADD added its rule only
    assert len(third) == 3 and not set(third) & set(first)  # the flushed chain was written again
    assert masq_rules == 3 and missing == 0
