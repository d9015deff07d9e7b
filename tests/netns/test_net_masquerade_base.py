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


def _refused_batch() -> tuple[int, int]:
    from pycni.net.firewall import nft_rules

    masquerade.setup_masquerade([ip_interface("10.9.0.2/24")], "basenet", "eth0", "c1", "nftables")
    real = nft_rules.add_rules

    def refuse(*args: object, **kwargs: object) -> None:
        raise nft.NftError("refused")

    nft_rules.add_rules = refuse  # type: ignore[assignment]
    try:  # the base is intact, the batch is refused: libnftables writes the rule instead
        masquerade.setup_masquerade([ip_interface("10.9.0.3/24")], "basenet", "eth0", "c2", "nftables")
        masquerade.setup_masquerade([ip_interface("10.9.0.3/24")], "basenet", "eth0", "c2", "nftables")  # again
    finally:
        nft_rules.add_rules = real
    masq_rules = len(nft.rules("inet", masquerade.TABLE, masquerade.MASQ_CHAIN))
    missing = len(masquerade.missing_masquerade([ip_interface("10.9.0.3/24")], "basenet", "eth0", "c2"))
    return masq_rules, missing


def test_a_refused_rule_batch_falls_back_to_libnftables(hostns: Netns) -> None:
    masq_rules, missing = hostns.call(_refused_batch)
    assert masq_rules == 2 and missing == 0  # c1's and c2's, the repeated ADD replacing its own
