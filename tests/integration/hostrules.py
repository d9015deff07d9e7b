"""Host-wide firewall state for kernel tests: look at it, and leave none behind.

Masquerade, spoof-check and portmap rules live in the host's shared tables
(``inet cni_plugins_masquerade``, ``bridge nat``, ``ip``/``ip6 nat``).
``host_rules_guard(network)`` wraps a test that creates such rules:

- on the way out it removes every masquerade rule of the test's network
  and the spoof-check rules of the attachments it recorded, whatever the
  test did;
- the shared tables and chains themselves stay until the run ends: tests in
  parallel (xdist workers, other files) use them, and the run-level hook in
  tests/conftest.py removes what the run created once every worker is done.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

MASQ_TABLE = ("inet", "cni_plugins_masquerade")
SPOOFCHK_TABLE = ("bridge", "nat")
_PORTMAP_PREFIX = "CNI-HOSTPORT-"


@dataclass
class HostRules:
    network: str
    attachments: list[tuple[str, str]] = field(default_factory=list)  # (container id, ifname) with spoof checks
    portmap: bool = False


def _nft(*args: str) -> list[dict[str, Any]]:
    done = subprocess.run(["nft", "-j", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return []
    return [o for o in json.loads(done.stdout)["nftables"] if "metainfo" not in o]


def _iptables_lines(family: int) -> list[list[str]]:
    tool = "iptables" if family == 4 else "ip6tables"
    done = subprocess.run([tool, "-w", "5", "-t", "nat", "-S"], capture_output=True, text=True, check=False)
    return [shlex.split(line) for line in done.stdout.splitlines()] if done.returncode == 0 else []


def _option(tokens: list[str], name: str) -> str:
    return tokens[tokens.index(name) + 1] if name in tokens[:-1] else ""


def masq_rule_lines(network: str) -> list[str]:
    """Every masquerade rule of ``network`` in either backend, as comparable text."""
    lines = []
    for obj in _nft("list", "chain", *MASQ_TABLE, "masq_checks"):
        rule = obj.get("rule")
        if rule and f"net: {network}," in rule.get("comment", ""):
            lines.append(f"nft {json.dumps(rule['expr'], sort_keys=True)} {rule['comment']}")
    for family in (4, 6):
        for tokens in _iptables_lines(family):
            if _option(tokens, "--comment").startswith(f'name: "{network}" '):
                lines.append(f"ipv{family} {shlex.join(tokens)}")
    return sorted(lines)


def spoofcheck_chains(container_id: str) -> list[str]:
    """Spoof-check chains of a container (``cni-br-iface-<id>-<ifname>[-mac]``)."""
    prefix = f"cni-br-iface-{container_id}-"
    return [
        o["chain"]["name"]
        for o in _nft("list", "table", *SPOOFCHK_TABLE)
        if o.get("chain", {}).get("name", "").startswith(prefix)
    ]


def _remove_own(rules: HostRules) -> None:
    from pycni.net.firewall.masquerade import gc_masquerade
    from pycni.net.firewall.spoofcheck import teardown_spoofcheck

    with suppress(Exception):
        gc_masquerade(rules.network, [])
    for container_id, ifname in rules.attachments:
        with suppress(Exception):
            teardown_spoofcheck(container_id, ifname)


@contextmanager
def host_rules_guard(network: str) -> Iterator[HostRules]:
    """The test's own rules are removed after it; shared tables and chains stay until the run ends.

    Deleting a shared table or chain here once it looked unused raced with
    the other workers (a plugin could add its rules between the look and the
    delete, and lose them).
    """
    rules = HostRules(network)
    try:
        yield rules
    finally:
        _remove_own(rules)
