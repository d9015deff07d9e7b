"""Host-wide firewall state for kernel tests: look at it, and leave none behind.

Masquerade, spoof-check and portmap rules live in the host's shared tables
(``inet cni_plugins_masquerade``, ``bridge nat``, ``ip``/``ip6 nat``).
``host_rules_guard(network)`` wraps a test that creates such rules:

- on the way out it removes every masquerade rule of the test's network
  and the spoof-check rules of the attachments it recorded, whatever the
  test did;
- tests running in parallel (xdist workers, other test files) share the
  tables, so each holds a shared lock on LOCK_PATH while it runs, and the
  last one out (the one that gets the lock exclusively) deletes the shared
  tables, portmap's top-level chains included, once nothing uses them.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

LOCK_PATH = "/run/lock/pycni-test-host-rules.lock"
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
    from pycni.net.masquerade import gc_masquerade
    from pycni.net.spoofcheck import teardown_spoofcheck

    with suppress(Exception):
        gc_masquerade(rules.network, [])
    for container_id, ifname in rules.attachments:
        with suppress(Exception):
            teardown_spoofcheck(container_id, ifname)


def _remove_unused_portmap_chains(family: int) -> None:
    tool = "iptables" if family == 4 else "ip6tables"
    lines = _iptables_lines(family)
    dnat_rules = [t for t in lines if t[:2] == ["-A", f"{_PORTMAP_PREFIX}DNAT"]]
    chains = [t[1] for t in lines if t[:1] == ["-N"] and t[1].startswith(_PORTMAP_PREFIX)]
    if dnat_rules or not chains:
        return  # in use by some pod, or absent
    for tokens in lines:
        if tokens[:1] == ["-A"] and tokens[1] not in chains and _option(tokens, "-j").startswith(_PORTMAP_PREFIX):
            subprocess.run([tool, "-w", "5", "-t", "nat", "-D", *tokens[1:]], capture_output=True, check=False)
    for chain in chains:
        subprocess.run([tool, "-w", "5", "-t", "nat", "-F", chain], capture_output=True, check=False)
    for chain in chains:
        subprocess.run([tool, "-w", "5", "-t", "nat", "-X", chain], capture_output=True, check=False)


def _delete_table_if(family: str, table: str, unused: bool) -> None:
    if unused:
        subprocess.run(["nft", "delete", "table", family, table], capture_output=True, check=False)


def _remove_unused_shared() -> None:
    masq = _nft("list", "table", *MASQ_TABLE)
    masq_rules = [o for o in masq if o.get("rule", {}).get("chain") == "masq_checks"]
    _delete_table_if(*MASQ_TABLE, bool(masq) and not masq_rules)

    spoof = _nft("list", "table", *SPOOFCHK_TABLE)
    extra = [o for o in spoof if "rule" in o or ("chain" in o and o["chain"]["name"] != "PREROUTING")]
    _delete_table_if(*SPOOFCHK_TABLE, bool(spoof) and not extra)

    for family, nft_family in ((4, "ip"), (6, "ip6")):
        _remove_unused_portmap_chains(family)
        objects = _nft("list", "table", nft_family, "nat")
        used = [o for o in objects if "rule" in o or ("chain" in o and "hook" not in o["chain"])]
        _delete_table_if(nft_family, "nat", bool(objects) and not used)


@contextmanager
def host_rules_guard(network: str) -> Iterator[HostRules]:
    rules = HostRules(network)
    os.makedirs(os.path.dirname(LOCK_PATH), exist_ok=True)
    fd = os.open(LOCK_PATH, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            yield rules
        finally:
            _remove_own(rules)
            fcntl.flock(fd, fcntl.LOCK_UN)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass  # another test still uses the shared tables: the last one out removes them
            else:
                _remove_unused_shared()
    finally:
        os.close(fd)
