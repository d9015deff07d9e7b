"""The host-local IPAM plugin: ADD, DEL, CHECK, STATUS, GC over a reservation store.

Contract:

- ADD takes one address from every range set, atomically, under the
  store's lock, and returns an IPAM result: ``ips`` (address with the
  subnet's prefix, and the range's gateway) in range-set order, the
  configured ``routes``, and ``dns`` parsed from ``resolvConf``.
- DEL releases every address of (container ID, ifname); nothing held is
  success. It ignores CNI_ARGS and works without range sets (a runtime's
  ``ipRanges`` may be missing): only the network name and dataDir matter.
- CHECK fails with code 3 unless the attachment holds an address.
- GC (spec 1.1.0) releases every reservation of the network whose
  attachment is not in ``cni.dev/valid-attachments``.
- STATUS (spec 1.1.0) fails with code 50 when some range set has no free
  address left, since ADD needs one from each; the reference has no STATUS
  handler and always succeeds.

Every handler takes an optional ``open_store(data_dir, network)`` so tests
can pass ``MemoryStore``; the default is the reference-compatible disk store.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from pycni import skel
from pycni.ipam.host_local.allocator import allocate_all
from pycni.ipam.host_local.config import parse_config
from pycni.ipam.host_local.store import DiskStore, Store, collect_garbage, find_attachment, release_attachment
from pycni.registry import load_plugin
from pycni.spec.errors import InvalidConfig, PluginNotAvailable, UnknownContainer
from pycni.spec.fields import parse_resolv_conf
from pycni.spec.record import replace
from pycni.spec.result import DNS, Result

__all__ = ["StoreFactory", "cmd_add", "cmd_check", "cmd_del", "cmd_gc", "cmd_status", "make_plugin"]

StoreFactory = Callable[[str, str], Store]  # (data_dir, network name) -> store


def cmd_add(args: skel.CmdArgs, open_store: StoreFactory = DiskStore) -> Result:
    conf = parse_config(args.config, args.cni_args())
    dns = _read_resolv_conf(conf.resolv_conf) if conf.resolv_conf else DNS()  # before reserving anything
    store = open_store(conf.data_dir, conf.network)
    with store.lock():
        ips = allocate_all(store, conf.range_sets, args.container_id, args.ifname, conf.requested_ips)
    return Result(cni_version=args.cni_version, ips=ips, routes=conf.routes, dns=dns)


def cmd_del(args: skel.CmdArgs, open_store: StoreFactory = DiskStore) -> None:
    # No CNI_ARGS: a stray key must not stop a release (DEL is best effort).
    conf = parse_config(args.config, None, require_ranges=False)
    store = open_store(conf.data_dir, conf.network)
    with store.lock():
        release_attachment(store, args.container_id, args.ifname)


def cmd_check(args: skel.CmdArgs, open_store: StoreFactory = DiskStore) -> None:
    conf = parse_config(args.config, args.cni_args())
    store = open_store(conf.data_dir, conf.network)
    with store.lock():
        held = find_attachment(store, args.container_id, args.ifname)
    if not held:
        raise UnknownContainer(f"host-local: Failed to find address added by container {args.container_id}")


def cmd_gc(args: skel.CmdArgs, open_store: StoreFactory = DiskStore) -> None:
    conf = parse_config(args.config, None, require_ranges=False)
    valid = args.valid_attachments()
    store = open_store(conf.data_dir, conf.network)
    with store.lock():
        collect_garbage(store, valid)


def cmd_status(args: skel.CmdArgs, open_store: StoreFactory = DiskStore) -> None:
    conf = parse_config(args.config, None, require_ranges=False)
    # Read without the lock: STATUS is advisory and must not wait behind a busy ADD.
    held = {res.ip for res in open_store(conf.data_dir, conf.network).reservations()}
    for index, range_set in enumerate(conf.range_sets):
        used = 0
        for ip in held:
            r = range_set.range_for(ip)
            used += r is not None and ip != r.gateway
        if used >= range_set.capacity():
            raise PluginNotAvailable(f"no IP addresses available in range set {index}: {range_set}")


def make_plugin(open_store: StoreFactory = DiskStore) -> skel.Plugin:
    """The registered plugin (pycni.registry) with its handlers bound to ``open_store`` (tests pass a fake)."""
    return replace(
        load_plugin("host-local"),
        add=partial(cmd_add, open_store=open_store),
        delete=partial(cmd_del, open_store=open_store),
        check=partial(cmd_check, open_store=open_store),
        status=partial(cmd_status, open_store=open_store),
        gc=partial(cmd_gc, open_store=open_store),
    )


def _read_resolv_conf(path: str) -> DNS:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return parse_resolv_conf(f.read())
    except OSError as exc:
        raise InvalidConfig(f"ipam.resolvConf: failed to read '{path}': {exc.strerror}") from exc


if __name__ == "__main__":
    skel.main(load_plugin("host-local"))
