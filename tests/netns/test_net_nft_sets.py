"""pycni.net.firewall.nft_sets against libnftables on the same table: what it reads agrees, what it writes is seen.

The table is portmap's, filled through libnftables (its script path) with
every kind of element portmap makes: IPv4 and IPv6, host-IP maps, ports
maps, masquerade sets with a pod subnet, 127.0.0.0/8 and 0.0.0.0/0, tcp,
udp and sctp, comments; plus a rule with an inline (anonymous) set.
"""

from __future__ import annotations

import contextlib
from ipaddress import ip_address, ip_interface
from typing import Any

import pytest

from pycni.net.firewall import nft, nft_sets
from pycni.plugins.portmap import nft_backend as pm
from pycni.plugins.portmap.conf import Attachment, FamilyTarget, PortMapConf, PortMapping
from pycni.plugins.portmap.nft_io import NftBackend
from tests.support.netns import Netns

NET1 = PortMapConf(network="net1", cni_version="1.0.0", mappings=(), snat=True)
NET2 = PortMapConf(network="net2", cni_version="1.0.0", mappings=(), snat=True, masq_all=True)
V4 = FamilyTarget(4, ip_interface("10.1.0.5/24"), (
    PortMapping(8080, 80, "tcp"), PortMapping(5353, 53, "udp"), PortMapping(8081, 80, "tcp", ip_address("192.0.2.1")),
    PortMapping(9090, 90, "sctp")))
V6 = FamilyTarget(6, ip_interface("fd00:1::5/64"), (
    PortMapping(8080, 80, "tcp"), PortMapping(8082, 82, "udp", ip_address("fd00:9::1"))))
OTHER = FamilyTarget(4, ip_interface("10.2.0.5/24"), (PortMapping(7070, 70, "tcp"),))


class _ScriptOnly:
    """libnftables, for filling the table the way portmap's script path does (NftBackend with a runner)."""

    list_json = staticmethod(nft.list_json)
    apply = staticmethod(nft.apply)


def _fill() -> None:
    backend = NftBackend(_ScriptOnly(), contextlib.nullcontext)
    backend.forward(Attachment("net1", "ctr1", "eth0"), [V4, V6], NET1)
    backend.forward(Attachment("net2", "ctr2", "eth0"), [OTHER], NET2)
    nft.apply(f"add rule inet {pm.TABLE} {pm.MASQ_CHAIN} tcp dport {{ 1, 2 }} counter")  # an anonymous set


def _both_views() -> tuple[set[Any], set[Any], set[Any], set[Any]]:
    listed = pm.parse_state(nft.list_json(f"table inet {pm.TABLE}"))
    view = nft_sets.read_table("inet", pm.TABLE)
    assert view is not None
    read = {(name, e.key, e.value, e.comment) for name, s in view.sets.items() for e in s.elements}
    rules = {(r.chain, r.handle, r.comment) for r in view.rules}
    return (read, {(e.set, e.key, e.value, e.comment) for e in listed.elements},
            rules, {(r.chain, r.handle, r.comment) for r in listed.rules})


def test_what_nft_sets_reads_is_what_libnftables_lists(hostns: Netns) -> None:
    def run() -> tuple[set[Any], set[Any], set[Any], set[Any], Any]:
        _fill()
        return (*_both_views(), nft_sets.read_table("inet", "pycni-no-such-table"))

    read, listed, rules, listed_rules, missing = hostns.call(run)
    assert read == listed
    assert len(read) == 16
    assert any(key[0] == "0.0.0.0/0" for _, key, _, _ in read) and any(key[0] == "fd00:1::/64" for _, key, _, _ in read)
    assert rules == listed_rules
    assert missing is None


def test_element_changes_are_one_transaction_seen_by_libnftables(hostns: Netns) -> None:
    def run() -> tuple[set[Any], set[Any], str, set[Any]]:
        _fill()
        view = nft_sets.read_table("inet", pm.TABLE)
        assert view is not None
        masq = next(s for name, s in view.sets.items() if name.endswith("_masq4") and s.elements
                    and "net1" in s.elements[0].comment)
        ports = next(s for name, s in view.sets.items() if name.endswith("_ports4") and s.elements
                     and "net1" in s.elements[0].comment)
        tag = "pycni/portmap/net1/ctrX/eth0"
        nft_sets.change_elements("inet", pm.TABLE, [(masq, e) for e in masq.elements],
                                 [(ports, nft_sets.SetElement(("udp", "6000"), ("10.1.0.6", "60"), tag)),
                                  (masq, nft_sets.SetElement(("10.1.0.0/24", "10.1.0.6", "udp", "60"), (), tag))])
        after = _both_views()
        refused = ""
        try:  # a delete of an element that is not there fails the batch, and the add with it
            nft_sets.change_elements("inet", pm.TABLE, [(ports, nft_sets.SetElement(("udp", "1"), ("10.1.0.6", "1")))],
                                     [(ports, nft_sets.SetElement(("udp", "2"), ("10.1.0.6", "2"), tag))])
        except nft.NftError as exc:
            refused = str(exc)
        return after[0], after[1], refused, _both_views()[1]

    read, listed, refused, listed_after = hostns.call(run)
    assert read == listed
    net1_masq4 = {key for name, key, _, _ in listed if name.endswith("_masq4") and key[1].startswith("10.1.")}
    assert net1_masq4 == {("10.1.0.0/24", "10.1.0.6", "udp", "60")}
    assert ("udp", "6000") in {key for name, key, _, _ in listed if name.endswith("_ports4")}
    assert "No such file or directory" in refused
    assert listed_after == listed


def test_portmap_adds_and_removes_a_pod_without_libnftables_once_its_network_exists(
        hostns: Netns, monkeypatch: pytest.MonkeyPatch) -> None:
    def run() -> tuple[list[str], Any, Any]:
        backend = NftBackend(lock=contextlib.nullcontext)
        backend.forward(Attachment("net1", "ctr1", "eth0"), [V4, V6], NET1)  # declares the table: libnftables
        scripts: list[str] = []
        monkeypatch.setattr(nft, "apply", scripts.append)
        monkeypatch.setattr(nft, "list_json", lambda what: pytest.fail(f"listed {what} through libnftables"))
        second = FamilyTarget(4, ip_interface("10.1.0.6/24"), (PortMapping(8090, 80, "tcp"),))
        backend.forward(Attachment("net1", "ctr2", "eth0"), [second], NET1)
        added = nft_sets.read_table("inet", pm.TABLE)
        removed = backend.unforward(Attachment("net1", "ctr2", "eth0"))
        return scripts, added, removed

    scripts, added, removed = hostns.call(run)
    assert scripts == []
    assert added is not None
    assert ("tcp", "8090") in {e.key for s in added.sets.values() for e in s.elements}
    assert [(f.host_port, f.pod_ip) for f in removed] == [(8090, "10.1.0.6")]


def test_a_thread_that_stays_in_a_namespace_can_keep_its_sockets(hostns: Netns) -> None:
    from pycni.net.firewall import nft_dump

    def run() -> tuple[int, int]:
        nft.apply("add table inet pycni-keep\nadd chain inet pycni-keep c")
        nft_dump.rule_comments("inet", "pycni-keep", "c")
        before = sum(len(idle) for idle in nft_dump._sockets._idle.values())
        nft_dump.keep_sockets_here()
        nft_dump.rule_comments("inet", "pycni-keep", "c")
        nft_dump.rule_comments("inet", "pycni-keep", "c")
        return before, sum(len(idle) for idle in nft_dump._sockets._idle.values())

    before, after = hostns.call(run)
    assert after == before + 1  # closed before it was asked, kept and reused after
