"""firewall (chained): let a pod's addresses through the host's forwarding filter.

ADD: prevResult required; every address in it gets the allow rules of the
configured backend, tagged with the attachment's owner tag; with an
ingressPolicy, the bridge (prevResult's first interface, which must be a
host-side one) gets its isolation rules. Output: prevResult unchanged.
DEL: removes exactly the rules tagged for (network, container, ifname);
prevResult is not needed; idempotent. Isolation rules stay with their
bridge (as in the reference) unless the bridge itself is gone.
CHECK: prevResult required; every rule ADD made is present.
GC: removes this network's rules whose attachment is not valid any more,
and isolation rules of bridges that no longer exist.

The backend is chosen here (``make_backend``; only its module is
imported) and every change runs under one host lock. What changes shared
rules holds it exclusively: GC (gc-then-prune is one critical section), the
pruning after a DEL (decided again under the exclusive lock, so an ADD on a
bridge of the same name cannot slip in between), and every command of a
backend without ``SHARED_LOCK``. The iptables backend's ADD and DEL of one
attachment touch only its own tagged rules once the shared chains exist, so
they hold the lock shared and run at once: held exclusively, the lock was a
quarter of the executor's time under 4-way churn, spent waiting for other
pods' iptables-save and -restore (issue 15). An ADD that finds shared chains
or jumps to make runs again under the exclusive lock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pycni.net.errors import NetError
from pycni.plugins.firewall.backend import Attachment, Backend, SharedChainsMissing
from pycni.plugins.firewall.conf import FirewallConf, parse_conf
from pycni.rundir import host_lock
from pycni.spec.errors import InvalidConfig
from pycni.spec.validate import IFNAME_MAX_BYTES

if TYPE_CHECKING:
    from pycni.skel import CmdArgs
    from pycni.spec.result import Result

__all__ = ["cmd_add", "cmd_check", "cmd_del", "cmd_gc", "load_conf", "make_backend"]

LOCK_NAME = "firewall"  # /run/pycni/firewall.lock

_BAD_IFNAME_CHARS = frozenset("\"\\'/: \t\n")


def _iptables_usable() -> bool:
    from pycni.net.firewall.iptables import tool as iptables

    return iptables.available(4)


def load_conf(args: CmdArgs) -> FirewallConf:
    return parse_conf(args.config, iptables_usable=_iptables_usable)


def _prev_result(args: CmdArgs) -> Result:
    prev = args.prev_result()
    if prev is None:
        raise InvalidConfig("prevResult: missing; firewall must be called as a chained plugin")
    return prev


def _bridge(prev: Result, policy: str) -> str:
    if not prev.interfaces:
        raise InvalidConfig(
            f"prevResult.interfaces: empty; ingressPolicy '{policy}' needs the bridge"
            " (chain the firewall plugin after the bridge plugin)"
        )
    first = prev.interfaces[0]
    if first.sandbox:
        raise InvalidConfig(
            f"prevResult.interfaces[0]: '{first.name}' is inside the container; ingressPolicy '{policy}'"
            " needs the host bridge there (chain the firewall plugin after the bridge plugin)"
        )
    if not first.name or any(c in _BAD_IFNAME_CHARS for c in first.name) or len(first.name.encode()) > IFNAME_MAX_BYTES:
        raise InvalidConfig(f"prevResult.interfaces[0].name: {first.name!r} is not a usable interface name")
    return first.name


def _attachment(args: CmdArgs, conf: FirewallConf, prev: Result | None) -> Attachment:
    addresses = tuple(dict.fromkeys(ip.address.ip for ip in prev.ips)) if prev is not None else ()
    bridge = ""
    if conf.ingress_policy != "open" and prev is not None:
        bridge = _bridge(prev, conf.ingress_policy)
    return Attachment(
        network=args.network_name,
        container_id=args.container_id,
        ifname=args.ifname,
        addresses=addresses,
        policy=conf.ingress_policy,
        bridge=bridge,
    )


def make_backend(name: str, admin_chain: str) -> Backend:
    """The backend called ``name`` (conf.BACKENDS); its module is imported only now."""
    if name == "nftables":
        from pycni.plugins.firewall.nft_backend import NftBackend

        return NftBackend()
    from pycni.plugins.firewall.iptables_backend import IptablesBackend

    return IptablesBackend(admin_chain)


def _backend(conf: FirewallConf) -> Backend:
    return make_backend(conf.backend, conf.admin_chain)


def _bridge_present(name: str) -> bool:
    from pycni.net.linkattrs import link_present

    return link_present(name)


def cmd_add(args: CmdArgs) -> Result:
    conf = load_conf(args)
    prev = _prev_result(args)
    att = _attachment(args, conf, prev)
    backend = _backend(conf)
    if getattr(backend, "SHARED_LOCK", False):
        try:
            with host_lock(LOCK_NAME, shared=True):
                backend.add(att, shared=True)  # type: ignore[call-arg]  # a SHARED_LOCK backend takes it
            return prev
        except SharedChainsMissing:
            pass  # the first pods: shared chains to make, exclusively
    with host_lock(LOCK_NAME):
        backend.add(att)
    return prev


def cmd_check(args: CmdArgs) -> None:
    conf = load_conf(args)
    att = _attachment(args, conf, _prev_result(args))
    _backend(conf).check(att)


def cmd_del(args: CmdArgs) -> None:
    conf = load_conf(args)
    try:
        prev = args.prev_result()
    except Exception:
        prev = None  # DEL must work without (or with an unreadable) prevResult
    try:
        att = _attachment(args, conf, prev)
    except InvalidConfig:
        att = _attachment(args, FirewallConf(backend=conf.backend, admin_chain=conf.admin_chain), prev)
    backend = _backend(conf)
    shared = bool(getattr(backend, "SHARED_LOCK", False))
    try:
        with host_lock(LOCK_NAME, shared=True) if shared else host_lock(LOCK_NAME):
            backend.delete(att)
            prune = att.bridge and not _bridge_present(att.bridge)
            if prune and not shared:
                backend.prune_bridges(lambda bridge: bridge != att.bridge)
        if prune and shared:
            with host_lock(LOCK_NAME):  # decided again under the exclusive lock: no ADD on that bridge between
                if not _bridge_present(att.bridge):
                    backend.prune_bridges(lambda bridge: bridge != att.bridge)
    except NetError:
        if _usable(conf.backend):
            raise
        # a backend this host cannot run holds no rules of ours


def _usable(backend: str) -> bool:
    from pycni.net.firewall import nft
    from pycni.net.firewall.iptables import tool as iptables

    if backend == "iptables":
        return iptables.available(4)
    try:
        nft.list_json("tables")
    except NetError:
        return False
    return True


def cmd_gc(args: CmdArgs) -> None:
    conf = load_conf(args)
    backend = _backend(conf)
    with host_lock(LOCK_NAME):
        backend.gc(args.network_name, args.valid_attachments())
        backend.prune_bridges(_bridge_present)
