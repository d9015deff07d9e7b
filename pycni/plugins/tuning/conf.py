"""tuning's configuration: parse, merge the override sources, vet every sysctl.

Contract: ``parse_conf`` is pure (the allow-list file's text is passed
in). Every problem is InvalidConfig naming the JSON path, and for a sysctl
``sysctl["<key>"]`` plus why it is refused.

Precedence (later wins, as in the reference plugin): the config's own
keys, then ``CNI_ARGS`` ``MAC=``, then ``runtimeConfig.mac`` (capability
``mac``), then ``args.cni.{mac, mtu, promisc, allmulti, txQLen}``;
``args.cni.sysctl`` is merged over ``sysctl`` key by key. CNI_ARGS is read
tolerantly (unknown keys are not an error: chained plugins cannot all
declare each other's keys, cni#560).

Which sysctls are allowed. The plugin writes them from a thread inside the
pod's network namespace, where the kernel shows only the ``net.*`` entries
registered for that namespace; but a few entries visible there act on
host-wide state on some kernels. So a key must be

- a dotted name of plain components (``[A-Za-z0-9_-]``; no ``/``, no
  empty or ``..`` component): it can never name a path outside
  /proc/sys/net;
- under ``net.`` (``kernel.*``, ``vm.*``, ``fs.*`` are host-wide);
- in a group known to be per network namespace: ipv4, ipv6, unix, mptcp,
  sctp, mpls, netfilter and, of ``net.core``, only ``somaxconn``,
  ``txrehash`` and ``xfrm_*`` (``rmem_max`` and friends are host-wide or
  read-only in a pod on many kernels). ``net.bridge.*`` is refused: it was
  host-wide before Linux 5.3;
- not one of the conntrack limits that are global on every kernel
  (``nf_conntrack_max``, ``nf_conntrack_buckets``,
  ``nf_conntrack_expect_max``);
- matched by a line of /etc/cni/tuning/allowlist.conf when that file exists
  (the reference's admin allow-list: one regex per line, searched in the
  key as written, ``IFNAME`` included).

``IFNAME`` as a whole component is replaced by CNI_IFNAME *after* the
key is split on dots, so interface names with dots (``eth0.100``) work.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pycni.spec.args import CniArgs
from pycni.spec.errors import InvalidConfig
from pycni.spec.readers import describe_json, lookup, read_bool, read_optional_bool, read_uint

__all__ = [
    "ALLOWLIST_PATH",
    "DEFAULT_DATA_DIR",
    "Sysctl",
    "TuningConf",
    "check_allowlist",
    "parse_conf",
    "resolve_sysctl",
]

DEFAULT_DATA_DIR = "/run/cni/tuning"
ALLOWLIST_PATH = "/etc/cni/tuning/allowlist.conf"

_COMPONENT = re.compile(r"^[A-Za-z0-9_-]+$")
_NAMESPACED_GROUPS = frozenset({"ipv4", "ipv6", "unix", "mptcp", "sctp", "mpls", "netfilter", "core"})
_NET_CORE_NAMESPACED = frozenset(
    {"somaxconn", "txrehash", "xfrm_acq_expires", "xfrm_aevent_etime", "xfrm_aevent_rseqth", "xfrm_larval_drop"}
)
_HOST_WIDE = frozenset(
    {
        "net.netfilter.nf_conntrack_max",
        "net.netfilter.nf_conntrack_buckets",
        "net.netfilter.nf_conntrack_expect_max",
    }
)


@dataclass(frozen=True)
class Sysctl:
    """One requested sysctl: the key as configured, its /proc/sys-relative path, the value."""

    key: str
    path: str  # slash form relative to /proc/sys, IFNAME substituted: "net/ipv4/conf/eth0.100/arp_filter"
    value: str

    @property
    def where(self) -> str:
        return f'sysctl["{self.key}"]'


@dataclass(frozen=True)
class TuningConf:
    sysctls: tuple[Sysctl, ...] = ()
    mac: str = ""  # "" = leave alone
    mtu: int = 0  # 0 = leave alone
    promisc: bool = False  # True = turn on; False = leave alone on ADD (CHECK still wants it off)
    allmulti: bool | None = None
    txqlen: int | None = None
    data_dir: str = DEFAULT_DATA_DIR

    @property
    def changes_link(self) -> bool:
        return bool(self.mac or self.mtu or self.promisc or self.allmulti is not None or self.txqlen is not None)


def _refuse(key: str, why: str) -> InvalidConfig:
    return InvalidConfig(f'sysctl["{key}"]: {why}')


def resolve_sysctl(key: str, ifname: str) -> str:
    """The /proc/sys-relative slash path of a configured key, or InvalidConfig saying why it is refused."""
    if not key:
        raise _refuse(key, "empty key")
    if "/" in key or "\\" in key:
        raise _refuse(key, "keys are dotted names (net.ipv4.ip_forward); '/' is not allowed")
    parts = key.split(".")
    if any(part in ("", "..") for part in parts):
        raise _refuse(key, "empty component (a leading, trailing or doubled '.')")
    bad = next((p for p in parts if p != "IFNAME" and not _COMPONENT.match(p)), None)
    if bad is not None:
        raise _refuse(key, f"component {bad!r} has characters other than letters, digits, '_' and '-'")
    if parts[0] != "net":
        raise _refuse(key, "only network-namespaced 'net.*' sysctls may be set in a pod; others are host-wide")
    if len(parts) < 3:
        raise _refuse(key, "not a sysctl: expected net.<group>.<name>")
    group = parts[1]
    if group not in _NAMESPACED_GROUPS:
        raise _refuse(key, f"'net.{group}' is not a known per-network-namespace sysctl group")
    if group == "core" and not (len(parts) == 3 and parts[2] in _NET_CORE_NAMESPACED):
        raise _refuse(
            key,
            "not per network namespace on every kernel (of net.core only somaxconn, txrehash and xfrm_* are)",
        )
    if key in _HOST_WIDE:
        raise _refuse(key, "a host-wide limit (read-only in a pod's network namespace)")
    if "IFNAME" in parts:
        if not ifname or "/" in ifname or ifname in (".", ".."):
            raise _refuse(key, f"cannot substitute IFNAME with interface name {ifname!r}")
        parts[parts.index("IFNAME")] = ifname
    return "/".join(parts)


def check_allowlist(keys: list[str], allowlist_text: str | None) -> None:
    """The reference's admin allow-list: when the file exists, every key must match one of its regexes."""
    if allowlist_text is None:
        return
    patterns: list[re.Pattern[str]] = []
    for number, line in enumerate(allowlist_text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        try:
            patterns.append(re.compile(line))
        except re.error as exc:
            raise InvalidConfig(f"{ALLOWLIST_PATH}:{number}: invalid regular expression {line!r}: {exc}") from exc
    for key in keys:
        if not any(p.search(key) for p in patterns):
            raise _refuse(key, f"not allowed by {ALLOWLIST_PATH}")


def _sysctl_map(value: Any, path: str) -> list[tuple[str, str]]:
    if value is None:
        return []
    if not isinstance(value, dict):
        raise InvalidConfig(f"{path}: expected an object of strings, got {describe_json(value)}")
    duplicates = getattr(value, "duplicates", ())
    if duplicates:
        raise InvalidConfig(f'{path}: key "{duplicates[0]}" appears more than once')
    out = []
    for key, item in value.items():
        if not isinstance(item, str):
            raise InvalidConfig(f'{path}["{key}"]: expected a string, got {describe_json(item)}')
        out.append((key, item))
    return out


def _mac(value: Any, path: str) -> str:
    from pycni.plugins.common import validate_mac

    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise InvalidConfig(f"{path}: expected a string, got {describe_json(value)}")
    validate_mac(value, path)
    return value.lower()


def parse_conf(
    config: Mapping[str, Any],
    *,
    ifname: str,
    cni_args: str = "",
    allowlist_text: str | None = None,
) -> TuningConf:
    """The effective tuning settings of one invocation (see the module doc for precedence and sysctl rules)."""
    sysctls = dict(_sysctl_map(lookup(config, "sysctl"), "sysctl"))
    mac = _mac(lookup(config, "mac"), "mac")
    mtu = read_uint(config, "mtu", "") or 0
    promisc = read_bool(config, "promisc", "")
    allmulti = read_optional_bool(config, "allmulti", "")
    txqlen = read_uint(config, "txQLen", "")
    data_dir = lookup(config, "dataDir")
    if data_dir is not None and (not isinstance(data_dir, str) or not data_dir.startswith("/")):
        raise InvalidConfig(f"dataDir: expected an absolute path, got {data_dir!r}")

    env_mac = CniArgs.parse(cni_args).get("MAC")
    if env_mac:
        mac = _mac(env_mac, "CNI_ARGS MAC")
    runtime = lookup(config, "runtimeConfig")
    if isinstance(runtime, dict) and lookup(runtime, "mac"):
        mac = _mac(lookup(runtime, "mac"), "runtimeConfig.mac")

    args = lookup(config, "args")
    section = lookup(args, "cni") if isinstance(args, dict) else None
    if isinstance(section, dict):
        sysctls.update(_sysctl_map(lookup(section, "sysctl"), "args.cni.sysctl"))
        if lookup(section, "mac"):
            mac = _mac(lookup(section, "mac"), "args.cni.mac")
        arg_mtu = read_uint(section, "mtu", "args.cni")
        if arg_mtu:
            mtu = arg_mtu
        arg_promisc = read_optional_bool(section, "promisc", "args.cni")
        if arg_promisc is not None:
            promisc = arg_promisc
        arg_allmulti = read_optional_bool(section, "allmulti", "args.cni")
        if arg_allmulti is not None:
            allmulti = arg_allmulti
        arg_txqlen = read_uint(section, "txQLen", "args.cni")
        if arg_txqlen is not None:
            txqlen = arg_txqlen

    check_allowlist(list(sysctls), allowlist_text)
    resolved = tuple(Sysctl(key, resolve_sysctl(key, ifname), value) for key, value in sysctls.items())
    paths = [s.path for s in resolved]
    for s in resolved:
        if paths.count(s.path) > 1:
            raise _refuse(s.key, f"names the same sysctl as another key ({s.path})")
    return TuningConf(
        sysctls=resolved,
        mac=mac,
        mtu=mtu,
        promisc=promisc,
        allmulti=allmulti,
        txqlen=txqlen,
        data_dir=data_dir or DEFAULT_DATA_DIR,
    )


class DuplicateAwareDict(dict[str, Any]):
    """A JSON object that remembers keys given more than once (Go's tuning rejects duplicate sysctl keys)."""

    duplicates: tuple[str, ...] = ()


def load_json_keeping_duplicates(data: bytes) -> Any:
    """Parse stdin again so that duplicate keys inside objects are visible (json.loads keeps the last silently)."""
    import json

    def hook(pairs: list[tuple[str, Any]]) -> DuplicateAwareDict:
        obj = DuplicateAwareDict()
        seen: list[str] = []
        for key, value in pairs:
            if key in obj:
                seen.append(key)
            obj[key] = value
        obj.duplicates = tuple(seen)
        return obj

    return json.loads(data, object_pairs_hook=hook)
