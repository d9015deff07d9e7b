"""nft_sets' field codec, pure: keys encoded as the kernel stores them read back as nft prints them."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pycni.net.firewall.nft import NftError
from pycni.net.firewall.nft_sets import _encode_field, _span, _types, set_view


@given(st.integers(0, 2**32 - 1), st.integers(0, 32))
def test_an_ipv4_prefix_reads_back_as_nft_prints_it(address: int, length: int) -> None:
    net = IPv4Network((address, length), strict=False)
    low, high = _encode_field("ipv4_addr", str(net)), _encode_field("ipv4_addr", str(net), end=True)
    expected = str(net.network_address) if length == 32 else str(net)
    assert _span("ipv4_addr", low, high) == expected


@given(st.integers(0, 2**128 - 1), st.integers(0, 128))
def test_an_ipv6_prefix_reads_back_as_nft_prints_it(address: int, length: int) -> None:
    net = IPv6Network((address, length), strict=False)
    low, high = _encode_field("ipv6_addr", str(net)), _encode_field("ipv6_addr", str(net), end=True)
    read = _span("ipv6_addr", low, high)  # inet_ntop's text, as nft's (::0.1.0.0 where Python says ::1:0)
    assert ("/" in read) == (length < 128)
    assert IPv6Network(read) == net


def test_fields_are_padded_to_four_bytes_and_ranges_that_are_no_prefix_stay_ranges() -> None:
    assert _encode_field("inet_proto", "tcp") == b"\x06\0\0\0"
    assert _encode_field("inet_service", "8080") == b"\x1f\x90\0\0"
    span = "10.0.0.1-10.0.0.6"
    low, high = _encode_field("ipv4_addr", span), _encode_field("ipv4_addr", span, end=True)
    assert _span("ipv4_addr", low, high) == "10.0.0.1-10.0.0.6"


def test_a_concatenated_type_splits_into_its_fields_first_field_first() -> None:
    assert _types((((7 << 6) | 12) << 6) | 13) == ("ipv4_addr", "inet_proto", "inet_service")
    assert _types(8) == ("ipv6_addr",)
    with pytest.raises(NftError, match="does not decode"):
        _types((7 << 6) | 22)  # ifname
    with pytest.raises(NftError, match="ether_addr"):
        set_view("s", "ether_addr")
