"""The iptables backend: the reference's chains in the filter table of iptables and ip6tables.

Shared pieces (CNI-FORWARD, the admin chain, the jumps, the isolation
chains and each bridge's isolation rules) are created when missing and
never deleted, as in the reference; only an attachment's own tagged rules
come and go, and GC prunes isolation rules of bridges that are gone.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
from collections.abc import Callable, Collection, Sequence

from pycni.net import iptables
from pycni.net.errors import NetError
from pycni.plugins.firewall import rules as r
from pycni.plugins.firewall.backend import Attachment, stale_tags
from pycni.spec.errors import CniError

__all__ = ["IptablesBackend"]

FILTER = "filter"


def _families() -> list[iptables.Family]:
    out: list[iptables.Family] = []
    if shutil.which("iptables"):
        out.append(4)
    if shutil.which("ip6tables"):
        out.append(6)
    return out


def _family(version: int) -> iptables.Family:
    return 4 if version == 4 else 6


def _option(tokens: Sequence[str], name: str) -> str | None:
    return tokens[tokens.index(name) + 1] if name in tokens[:-1] else None


def _rules_of(family: iptables.Family, chain: str) -> list[list[str]]:
    """``iptables -S <chain>`` rules as token lists without the leading ``-A <chain>``."""
    out = []
    for line in iptables.list_rules(family, FILTER, chain):
        tokens = shlex.split(line)
        if len(tokens) > 2 and tokens[0] == "-A":
            out.append(tokens[2:])
    return out


def _delete(family: iptables.Family, chain: str, rule: Sequence[str]) -> None:
    iptables.run(family, "-t", FILTER, "-D", chain, *rule)


class IptablesBackend:
    def __init__(self, admin_chain: str) -> None:
        self.admin_chain = admin_chain

    # -- ADD -------------------------------------------------------------------

    def _ensure_base(self, family: iptables.Family) -> None:
        iptables.ensure_chain(family, FILTER, r.CNI_FORWARD)
        iptables.ensure_chain(family, FILTER, self.admin_chain)
        iptables.insert_unique(family, FILTER, "FORWARD", r.forward_jump())
        iptables.insert_unique(family, FILTER, r.CNI_FORWARD, r.admin_jump(self.admin_chain))

    def _ensure_isolation(self, family: iptables.Family, bridge: str, policy: str) -> None:
        iptables.ensure_chain(family, FILTER, r.STAGE1)
        iptables.ensure_chain(family, FILTER, r.STAGE2)
        rules = r.iptables_isolation(bridge, policy)
        for chain, wanted in ((r.STAGE1, rules.stage1), (r.STAGE2, rules.stage2)):
            for rule in wanted:
                iptables.insert_unique(family, FILTER, chain, list(rule))
            iptables.append_unique(family, FILTER, chain, list(rules.tail))
        iptables.insert_unique(family, FILTER, "FORWARD", r.stage1_jump(policy))
        self._isolation_first(family)

    def _isolation_first(self, family: iptables.Family) -> None:
        """Keep every jump to the isolation chain ahead of the jump to CNI-FORWARD.

        Otherwise CNI-FORWARD's ``-s <pod> -j ACCEPT`` would let traffic
        past the isolation drop (possible when CNI-FORWARD's jump was
        re-inserted at the top after the isolation jump existed).
        """
        forward = _rules_of(family, "FORWARD")
        targets = [_option(rule, "-j") for rule in forward]
        if r.CNI_FORWARD not in targets:
            return
        first_cni = targets.index(r.CNI_FORWARD)
        for index, rule in enumerate(forward):
            if targets[index] == r.STAGE1 and index > first_cni:
                _delete(family, "FORWARD", rule)
                iptables.run(family, "-t", FILTER, "-I", "FORWARD", "1", *rule)

    def add(self, att: Attachment) -> None:
        try:
            for version in att.families():
                family = _family(version)
                self._ensure_base(family)
                for ip in att.addresses:
                    if ip.version == version:
                        for rule in r.iptables_allow_rules(ip, att.tag):
                            iptables.append_unique(family, FILTER, r.CNI_FORWARD, rule)
                if att.policy != "open":
                    self._ensure_isolation(family, att.bridge, att.policy)
        except NetError:
            with contextlib.suppress(NetError):
                self.delete(att)
            raise

    # -- CHECK -----------------------------------------------------------------

    def check(self, att: Attachment) -> None:
        for version in att.families():
            family = _family(version)
            tool = "iptables" if family == 4 else "ip6tables"
            for chain in (r.CNI_FORWARD, self.admin_chain):
                if not iptables.chain_exists(family, FILTER, chain):
                    raise CniError(f"firewall: {tool} chain {chain} is missing")
            expected: list[tuple[str, list[str]]] = [
                ("FORWARD", r.forward_jump()),
                (r.CNI_FORWARD, r.admin_jump(self.admin_chain)),
            ]
            for ip in att.addresses:
                if ip.version == version:
                    expected += [(r.CNI_FORWARD, rule) for rule in r.iptables_allow_rules(ip, att.tag)]
            if att.policy != "open":
                iso = r.iptables_isolation(att.bridge, att.policy)
                expected.append(("FORWARD", r.stage1_jump(att.policy)))
                expected += [(r.STAGE1, list(rule)) for rule in iso.stage1]
                expected += [(r.STAGE2, list(rule)) for rule in iso.stage2]
            for chain, rule in expected:
                if not iptables.rule_exists(family, FILTER, chain, rule):
                    raise CniError(f"firewall: {tool} rule missing in {chain}: {shlex.join(rule)}")

    # -- DEL and GC --------------------------------------------------------------

    def _delete_tagged(self, family: iptables.Family, doomed: Callable[[str], bool]) -> None:
        for rule in _rules_of(family, r.CNI_FORWARD):
            tag = _option(rule, "--comment")
            if tag is not None and doomed(tag):
                _delete(family, r.CNI_FORWARD, rule)

    def delete(self, att: Attachment) -> None:
        for family in _families():  # both: the tag alone says what is this attachment's
            if iptables.chain_exists(family, FILTER, r.CNI_FORWARD):
                self._delete_tagged(family, lambda tag: tag == att.tag)

    def gc(self, network: str, valid: Collection[tuple[str, str]]) -> None:
        for family in _families():
            if not iptables.chain_exists(family, FILTER, r.CNI_FORWARD):
                continue
            tags = {_option(rule, "--comment") or "" for rule in _rules_of(family, r.CNI_FORWARD)}
            stale = stale_tags(tags, network, valid)
            if stale:
                self._delete_tagged(family, stale.__contains__)

    def prune_bridges(self, keep: Callable[[str], bool]) -> None:
        comments = {r.ingress_comment(policy) for policy in ("same-bridge", "isolated")}
        for family in _families():
            for chain, flag in ((r.STAGE1, "-i"), (r.STAGE2, "-o")):
                for rule in _rules_of(family, chain):
                    bridge = _option(rule, flag)
                    if bridge and _option(rule, "--comment") in comments and not keep(bridge):
                        _delete(family, chain, rule)
