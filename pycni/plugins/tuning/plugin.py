"""tuning (chained): sysctls and link attributes of CNI_IFNAME inside the pod.

ADD: vet the config (conf.py), record the original values in the backup
file, then write the sysctls and set MAC, promisc (on only), MTU,
allmulti and txQLen; the result is prevResult with the interface's MAC
updated. A failure part way puts back what was changed.
DEL: restore the link attributes from the backup (every error ignored: the
netns or link may be gone), restore each sysctl whose value is still the one
ADD wrote (the reference leaves sysctls alone; a value someone changed
since is left too), then delete the backup, whether or not the netns
still exists (the reference keeps it when it cannot enter the netns).
CHECK: sysctl values (compared word by word, so "4096 87380" matches the
kernel's tab-separated form) and the attributes match the config; promisc
is checked both ways, as in the reference.
GC: delete this network's backups of attachments that are no longer valid.
"""

from __future__ import annotations

import errno
import sys
from typing import TYPE_CHECKING, Any

from pycni.plugins.tuning.backup import (
    Backup,
    backup_path,
    list_backups,
    read_backup,
    remove_backup,
    write_backup,
)
from pycni.plugins.tuning.conf import (
    ALLOWLIST_PATH,
    Sysctl,
    TuningConf,
    load_json_keeping_duplicates,
    parse_conf,
)
from pycni.spec.errors import CniError, InvalidConfig

if TYPE_CHECKING:
    from pycni.net.errors import NetError
    from pycni.skel import CmdArgs
    from pycni.spec.result import Result

__all__ = ["cmd_add", "cmd_check", "cmd_del", "cmd_gc", "load_conf"]


def load_conf(args: CmdArgs) -> TuningConf:
    config: Any = args.config
    if args.stdin_data:
        try:
            config = load_json_keeping_duplicates(args.stdin_data)
        except ValueError:
            config = args.config  # skel parsed it already; keep its reading
    try:
        with open(ALLOWLIST_PATH, encoding="utf-8") as f:
            allowlist: str | None = f.read()
    except FileNotFoundError:
        allowlist = None
    return parse_conf(config, ifname=args.ifname, cni_args=args.args, allowlist_text=allowlist)


def _prev_result(args: CmdArgs) -> Result:
    prev = args.prev_result()
    if prev is None:
        raise InvalidConfig("prevResult: missing; tuning must be called as a chained plugin")
    return prev


def _sysctl_error(s: Sysctl, exc: NetError, writing: bool) -> CniError:
    if exc.errno == errno.ENOENT:
        return InvalidConfig(
            f"{s.where}: /proc/sys/{s.path} does not exist in the pod's network namespace"
            " (unknown key, missing interface, or not network-namespaced on this kernel)"
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return InvalidConfig(f"{s.where}: read-only in the pod's network namespace (host-wide on this kernel)")
    if writing and exc.errno == errno.EINVAL:
        return InvalidConfig(f"{s.where}: the kernel rejected the value {s.value!r}")
    return exc


# -- inside the pod's netns ---------------------------------------------------


def _apply(conf: TuningConf, ifname: str, path: str, meta: Backup) -> None:
    from pycni.net import linkattrs, links, sysctl
    from pycni.net.errors import NetError

    current = linkattrs.get_link_attrs(ifname)
    backup = read_backup(path) or meta
    backup.network, backup.container_id, backup.ifname = meta.network, meta.container_id, meta.ifname
    # A repeated ADD keeps the originals recorded by the first one.
    if conf.mac and not backup.mac:
        backup.mac = current.mac
    if conf.promisc and backup.promisc is None:
        backup.promisc = current.promisc
    if conf.mtu and not backup.mtu:
        backup.mtu = current.mtu
    if conf.allmulti is not None and backup.allmulti is None:
        backup.allmulti = current.allmulti
    if conf.txqlen is not None and backup.txqlen is None:
        backup.txqlen = current.txqlen
    for s in conf.sysctls:
        try:
            original = sysctl.read_sysctl(s.path)
        except NetError as exc:
            raise _sysctl_error(s, exc, writing=False) from exc
        previous = backup.sysctls.get(s.path)
        backup.sysctls[s.path] = (previous[0] if previous else original, s.value)
    write_backup(path, backup)
    try:
        for s in conf.sysctls:
            try:
                sysctl.write_sysctl(s.path, s.value)
            except NetError as exc:
                raise _sysctl_error(s, exc, writing=True) from exc
        if conf.mac:
            links.set_link_mac(ifname, conf.mac)
        if conf.promisc:
            linkattrs.set_promisc(ifname, True)
        if conf.mtu:
            links.set_link_mtu(ifname, conf.mtu)
        if conf.allmulti is not None:
            linkattrs.set_allmulti(ifname, conf.allmulti)
        if conf.txqlen is not None:
            linkattrs.set_txqlen(ifname, conf.txqlen)
    except BaseException:
        _restore(backup, ifname)
        remove_backup(path)
        raise


def _same(a: str, b: str) -> bool:
    return a.split() == b.split()


def _restore(backup: Backup, ifname: str) -> list[str]:
    """Put back what the backup recorded; returns the problems (never raises)."""
    from pycni.net import linkattrs, links, sysctl

    steps: list[tuple[str, Any]] = []
    if backup.mtu:
        steps.append(("mtu", lambda: links.set_link_mtu(ifname, backup.mtu)))
    if backup.mac:
        steps.append(("mac", lambda: links.set_link_mac(ifname, backup.mac)))
    if backup.promisc is not None:
        steps.append(("promisc", lambda: linkattrs.set_promisc(ifname, bool(backup.promisc))))
    if backup.allmulti is not None:
        steps.append(("allmulti", lambda: linkattrs.set_allmulti(ifname, bool(backup.allmulti))))
    if backup.txqlen is not None:
        steps.append(("txQLen", lambda: linkattrs.set_txqlen(ifname, int(backup.txqlen or 0))))

    def restore_sysctl(path: str, original: str, written: str) -> None:
        if _same(sysctl.read_sysctl(path), written):
            sysctl.write_sysctl(path, original)

    for path, (original, written) in backup.sysctls.items():
        steps.append((f"sysctl {path}", lambda p=path, o=original, w=written: restore_sysctl(p, o, w)))
    problems = []
    for what, step in steps:
        try:
            step()
        except Exception as exc:
            problems.append(f"{what}: {exc}")
    return problems


def _check(conf: TuningConf, ifname: str) -> None:
    from pycni.net import linkattrs, sysctl
    from pycni.net.errors import NetError

    for s in conf.sysctls:
        try:
            value = sysctl.read_sysctl(s.path)
        except NetError as exc:
            raise _sysctl_error(s, exc, writing=False) from exc
        if not _same(value, s.value):
            raise CniError(f"{s.where}: is {value!r}, expected {s.value!r}")
    current = linkattrs.get_link_attrs(ifname)
    if conf.mac and current.mac != conf.mac:
        raise CniError(f"interface '{ifname}': mac is {current.mac}, expected {conf.mac}")
    if current.promisc != conf.promisc:
        raise CniError(f"interface '{ifname}': promisc is {_onoff(current.promisc)}, expected {_onoff(conf.promisc)}")
    if conf.mtu and current.mtu != conf.mtu:
        raise CniError(f"interface '{ifname}': mtu is {current.mtu}, expected {conf.mtu}")
    if conf.allmulti is not None and current.allmulti != conf.allmulti:
        raise CniError(
            f"interface '{ifname}': allmulti is {_onoff(current.allmulti)}, expected {_onoff(conf.allmulti)}"
        )
    if conf.txqlen is not None and current.txqlen != conf.txqlen:
        raise CniError(f"interface '{ifname}': txQLen is {current.txqlen}, expected {conf.txqlen}")


def _onoff(flag: bool) -> str:
    return "on" if flag else "off"


# -- the commands -------------------------------------------------------------


def _with_mac(result: Result, ifname: str, mac: str) -> Result:
    from dataclasses import replace

    named = [i for i, iface in enumerate(result.interfaces) if iface.name == ifname]
    in_sandbox = [i for i in named if result.interfaces[i].sandbox]
    targets = set(in_sandbox or named)
    interfaces = tuple(replace(iface, mac=mac) if i in targets else iface for i, iface in enumerate(result.interfaces))
    return replace(result, interfaces=interfaces)


def cmd_add(args: CmdArgs) -> Result:
    from pycni.net.netns import run_in_netns

    conf = load_conf(args)
    result = _prev_result(args)
    if not conf.sysctls and not conf.changes_link:
        return result  # podman's plain {"type": "tuning"}: nothing to do, not even to enter the netns
    path = backup_path(conf.data_dir, args.container_id, args.ifname)
    meta = Backup(network=args.network_name, container_id=args.container_id, ifname=args.ifname)
    run_in_netns(args.netns, _apply, conf, args.ifname, path, meta)
    if conf.mac:
        result = _with_mac(result, args.ifname, conf.mac)
    return result


def cmd_del(args: CmdArgs) -> None:
    from pycni.net.errors import NetError
    from pycni.net.netns import run_in_netns

    try:
        conf = load_conf(args)
    except CniError:
        data_dir = args.config.get("dataDir")
        conf = TuningConf(data_dir=data_dir) if isinstance(data_dir, str) and data_dir.startswith("/") else TuningConf()
    path = backup_path(conf.data_dir, args.container_id, args.ifname)
    backup = read_backup(path)
    if backup is None:
        return
    problems: list[str] = []
    if args.netns:
        try:
            problems = run_in_netns(args.netns, _restore, backup, args.ifname)
        except NetError as exc:
            problems = [str(exc)]
    if problems:
        print(f"tuning: DEL could not restore everything: {'; '.join(problems)}", file=sys.stderr)
    remove_backup(path)


def cmd_check(args: CmdArgs) -> None:
    from pycni.net.netns import run_in_netns

    conf = load_conf(args)
    _prev_result(args)
    run_in_netns(args.netns, _check, conf, args.ifname)


def cmd_gc(args: CmdArgs) -> None:
    conf = load_conf(args)
    valid = set(args.valid_attachments())
    for path, backup in list_backups(conf.data_dir):
        # only this network's backups, and only those pycni wrote (the reference's carry no owner)
        mine = backup.network == args.network_name and bool(backup.container_id)
        if mine and (backup.container_id, backup.ifname) not in valid:
            remove_backup(path)
