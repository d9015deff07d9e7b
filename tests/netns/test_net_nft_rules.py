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


# -- iptables-nft's rules: ours must be what iptables-nft itself would have written ----------------------------


IPTABLES_CASES = [  # (address, source, replies_only)
    ("10.1.2.3", False, True), ("10.1.2.3", True, False), ("fd00::1:2", False, True), ("fd00::1:2", True, False),
]


def _iptables_both_ways(address: str, source: bool, replies_only: bool) -> tuple[bytes, bytes, str, str]:
    import subprocess
    from ipaddress import ip_address

    ip = ip_address(address)
    tool, family = ("iptables", "ip") if ip.version == 4 else ("ip6tables", "ip6")
    comment = "name: net1 id: " + "c" * 64
    args = ["-A", "CNI-FORWARD", "-s" if source else "-d", f"{ip}/{ip.max_prefixlen}"]
    if replies_only:
        args += ["-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED"]
    args += ["-m", "comment", "--comment", comment, "-j", "ACCEPT"]
    subprocess.run([tool, "-w", "-N", "CNI-FORWARD"], check=True)
    subprocess.run([tool, "-w", *args], check=True)

    def listed() -> tuple[bytes, str]:
        saved = subprocess.run([f"{tool}-save", "-t", "filter"], check=True, capture_output=True, text=True).stdout
        return (nft_dump.chain_expressions(family, "filter", "CNI-FORWARD")[-1],
                next(line for line in saved.splitlines() if line.startswith("-A CNI-FORWARD")))

    theirs, their_line = listed()
    subprocess.run([tool, "-w", "-F", "CNI-FORWARD"], check=True)
    nft_rules.add_rules(family, "filter", "CNI-FORWARD",
                        [nft_rules.iptables_accept_rule(ip, source=source, replies_only=replies_only, comment=comment)])
    ours, our_line = listed()
    return ours, theirs, our_line, their_line


@pytest.mark.parametrize(("address", "source", "replies_only"), IPTABLES_CASES)
def test_iptables_accept_rule_is_encoded_as_iptables_nft_encodes_it(hostns: Netns, address: str, source: bool,
                                                                    replies_only: bool) -> None:
    from pycni.net.firewall.iptables import tool

    if tool.variant(4) != "nf_tables":
        pytest.skip("iptables here is not iptables-nft")
    ours, theirs, our_line, their_line = hostns.call(_iptables_both_ways, address, source, replies_only)
    assert ours == theirs
    assert our_line == their_line  # and iptables-save shows it as its own
