"""Links: look them up, create the kinds CNI plugins need, change and delete them.

Contract:

- Functions act in the calling thread's network namespace unless they take
  a ``netns``; those that do open it with ``open_netns`` (never creating it)
  and do their in-namespace work via ``run_in_netns``.
- A link is named by its name; results are frozen ``LinkInfo`` snapshots.
- Missing links raise ``LinkNotFound``, missing namespaces ``NetnsNotFound``;
  ``delete_link(..., missing_ok=True)`` turns both into a ``False`` return so
  DEL paths stay one line. A link type the kernel lacks raises
  ``UnsupportedKernelFeature`` ("kernel does not support link type 'ipvlan'").
- Creation helpers that place a link in a container namespace create it
  directly there (IFLA_NET_NS_FD), so its final name is only ever checked
  against the container's links and never collides with the host's.
- Interface names are at most 15 bytes (IFNAMSIZ - 1); bridge-specific
  helpers live in ``pycni.net.bridge``.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pycni.net import _nlsync
from pycni.net._netlink import failing, link_index, rtnl, session
from pycni.net.errors import LinkExists, LinkNotFound, LinkNotUp, NetError, NetnsNotFound, UnsupportedKernelFeature
from pycni.net.linkquery import RawLink, dump_links, index_of, kind_u16, kind_u32, query_link
from pycni.net.netns import NetnsRef, open_netns, run_in_netns
from pycni.net.sysctl import iface_key, write_sysctl

__all__ = [
    "OPER_DELAYS",
    "LinkInfo",
    "create_dummy",
    "create_ipvlan",
    "create_macvlan",
    "create_tap",
    "create_veth_pair",
    "create_vlan",
    "delete_link",
    "get_link",
    "get_link_by_index",
    "link_exists",
    "list_links",
    "move_link_to_netns",
    "random_ifname",
    "rename_link",
    "set_link_alias",
    "set_link_down",
    "set_link_mac",
    "set_link_mtu",
    "set_link_up",
    "set_master",
    "wait_oper_up",
]

IFF_UP = 0x1
IFF_PROMISC = 0x100

MacvlanMode = Literal["private", "vepa", "bridge", "passthru", "source"]
IpvlanMode = Literal["l2", "l3", "l3s"]

_MACVLAN_MODES: dict[str, int] = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8, "source": 16}
_IPVLAN_MODES: dict[str, int] = {"l2": 0, "l3": 1, "l3s": 2}

# RFC 2863 operational states, spelled as the Go netlink library prints them
# (error messages such as "bridge port in error state: down" match Go's).
_OPER_STATES: dict[str, str] = {
    "UNKNOWN": "unknown",
    "NOTPRESENT": "not-present",
    "DOWN": "down",
    "LOWERLAYERDOWN": "lower-layer-down",
    "TESTING": "testing",
    "DORMANT": "dormant",
    "UP": "up",
}

#: The bridge plugin's wait for a host veth to come up: 0, 50, 500, 1000, 1000 ms.
OPER_DELAYS: tuple[float, ...] = (0.0, 0.05, 0.5, 1.0, 1.0)

_VETH_NAME_TRIES = 10


@dataclass(frozen=True)
class LinkInfo:
    """A snapshot of one link as the kernel reported it."""

    name: str
    index: int
    kind: str  # IFLA_INFO_KIND: "veth", "bridge", "macvlan", "tun", ... ("" for physical devices)
    mac: str
    mtu: int
    up: bool  # administratively up (IFF_UP)
    oper_state: str  # "up", "down", "lower-layer-down", "unknown", ...
    promisc: bool
    master: int | None  # ifindex of the bridge/bond this link is enslaved to
    alias: str
    # IFLA_LINK: the veth peer, or the parent of a macvlan/ipvlan/vlan. The
    # index is in another namespace when link_netnsid is set.
    link_index: int | None
    link_netnsid: int | None
    mode: str | None  # macvlan mode ("bridge", ...) or ipvlan mode ("l2", ...)
    vlan_id: int | None

    @property
    def peer_index(self) -> int | None:
        """The veth peer's ifindex (None for other kinds)."""
        return self.link_index if self.kind == "veth" else None


_IFLA_MODE = 1  # IFLA_MACVLAN_MODE (u32), IFLA_IPVLAN_MODE (u16) and IFLA_VLAN_ID (u16) are all type 1


def _decode_mode(raw: RawLink) -> str | None:
    if raw.kind in ("macvlan", "macvtap"):
        mode = kind_u32(raw, _IFLA_MODE)
        return None if mode is None else next((k for k, v in _MACVLAN_MODES.items() if v == mode), str(mode))
    if raw.kind == "ipvlan":
        mode = kind_u16(raw, _IFLA_MODE)
        return None if mode is None else next((k for k, v in _IPVLAN_MODES.items() if v == mode), str(mode))
    return None


def _to_info(raw: RawLink) -> LinkInfo:
    return LinkInfo(
        name=raw.name,
        index=raw.index,
        kind=raw.kind,
        mac=raw.mac,
        mtu=raw.mtu,
        up=bool(raw.flags & IFF_UP),
        oper_state=_OPER_STATES.get(raw.oper_state, "unknown"),
        promisc=bool(raw.flags & IFF_PROMISC),
        master=raw.master,
        alias=raw.alias,
        link_index=raw.link,
        link_netnsid=raw.link_netnsid,
        mode=_decode_mode(raw),
        vlan_id=kind_u16(raw, _IFLA_MODE) if raw.kind == "vlan" else None,
    )


def random_ifname(prefix: str) -> str:
    """``prefix`` + 8 random hex digits, e.g. "veth1a2b3c4d"."""
    return f"{prefix}{os.urandom(4).hex()}"


# --------------------------------------------------------------------------
# Looking links up
# --------------------------------------------------------------------------


def _get_here(name: str) -> LinkInfo:
    return _to_info(query_link(name=name))


def get_link(name: str, netns: NetnsRef | None = None) -> LinkInfo:
    """The link called ``name``; LinkNotFound if there is none."""
    return _get_here(name) if netns is None else run_in_netns(netns, _get_here, name)


def _get_index_here(index: int) -> LinkInfo:
    return _to_info(query_link(index=index))


def get_link_by_index(index: int, netns: NetnsRef | None = None) -> LinkInfo:
    """The link with ifindex ``index``; LinkNotFound if there is none."""
    return _get_index_here(index) if netns is None else run_in_netns(netns, _get_index_here, index)


def link_exists(name: str, netns: NetnsRef | None = None) -> bool:
    """True if a link called ``name`` exists (NetnsNotFound if the namespace does not)."""
    try:
        get_link(name, netns)
    except LinkNotFound:
        return False
    return True


def _list_here() -> list[LinkInfo]:
    return [_to_info(raw) for raw in dump_links()]


def list_links(netns: NetnsRef | None = None) -> list[LinkInfo]:
    """Every link in the namespace (for lookups by alias or MAC)."""
    return _list_here() if netns is None else run_in_netns(netns, _list_here)


# --------------------------------------------------------------------------
# Changing links
# --------------------------------------------------------------------------


def _set(name: str, action: str, *, flags: int = 0, change: int = 0, attrs: _nlsync.Attrs = ()) -> None:
    index = index_of(name)
    with failing(f"{action} of link '{name}'"):
        _nlsync.request(_nlsync.link_msg(index, flags=flags, change=change, attrs=attrs), _nlsync.RTM_NEWLINK)


def set_link_up(name: str) -> None:
    """Bring a link administratively up."""
    _set(name, "set up", flags=IFF_UP, change=IFF_UP)


def set_link_down(name: str) -> None:
    """Bring a link administratively down."""
    _set(name, "set down", flags=0, change=IFF_UP)


def set_link_mtu(name: str, mtu: int) -> None:
    """Change a link's MTU."""
    _set(name, f"set mtu {mtu}", attrs=[("IFLA_MTU", mtu)])


def set_link_mac(name: str, mac: str) -> None:
    """Change a link's hardware address (also used to pin a bridge's MAC)."""
    _set(name, f"set mac {mac}", attrs=[("IFLA_ADDRESS", mac)])


def set_link_alias(name: str, alias: str) -> None:
    """Set (or, with "", clear) a link's alias; host-device keeps the original name there."""
    _set(name, "set alias", attrs=[("IFLA_IFALIAS", alias)])


def set_master(name: str, master: str | None) -> None:
    """Enslave ``name`` to the bridge ``master``, or release it with ``None``."""
    index = index_of(name)
    master_index = 0 if master is None else index_of(master)
    action = f"release link '{name}' from its master" if master is None else f"connect '{name}' to '{master}'"
    with failing(action):
        _nlsync.request(_nlsync.link_msg(index, attrs=[("IFLA_MASTER", master_index)]), _nlsync.RTM_NEWLINK)


def rename_link(name: str, new_name: str) -> None:
    """Rename a link (most kernels require it to be down)."""
    with rtnl() as ipr:
        index = link_index(ipr, name)
        with failing(f"rename link '{name}' to '{new_name}'"):
            ipr.link("set", index=index, ifname=new_name)


def move_link_to_netns(name: str, netns: NetnsRef, new_name: str | None = None) -> None:
    """Move a link into another namespace, optionally renaming it on the way in one message.

    The new name is only checked in the target namespace. Only when the
    current name is taken there does the kernel apply the new name as part
    of the move; otherwise it moves the link first and renames it after, so
    a failed rename (the new name is taken) leaves the link moved under its
    old name (verified on 6.x kernels).
    """
    fd = netns if isinstance(netns, int) else open_netns(netns)
    try:
        with rtnl() as ipr:
            index = link_index(ipr, name)
            changes: dict[str, Any] = {"net_ns_fd": fd}
            if new_name is not None:
                changes["ifname"] = new_name
            target = new_name or name
            with failing(f"move link '{name}' to netns '{netns}' as '{target}'"):
                ipr.link("set", index=index, **changes)
    finally:
        if not isinstance(netns, int):
            os.close(fd)


def _delete_here(name: str, missing_ok: bool) -> bool:
    try:
        index = index_of(name)
        with failing(f"delete link '{name}'"):
            _nlsync.request(_nlsync.link_msg(index), _nlsync.RTM_DELLINK)
    except LinkNotFound:
        if missing_ok:
            return False
        raise
    return True


def delete_link(name: str, netns: NetnsRef | None = None, *, missing_ok: bool = False) -> bool:
    """Delete a link; True if deleted.

    With ``missing_ok`` a missing link or a missing namespace returns False
    instead of raising LinkNotFound / NetnsNotFound (what every DEL wants).
    Deleting one end of a veth pair deletes both.
    """
    if netns is None:
        return _delete_here(name, missing_ok)
    try:
        return run_in_netns(netns, _delete_here, name, missing_ok)
    except NetnsNotFound:
        if missing_ok:
            return False
        raise


def wait_oper_up(name: str, delays: Sequence[float] = OPER_DELAYS) -> LinkInfo:
    """Poll until the link's operational state is "up"; LinkNotUp (with ``.state``) otherwise.

    One check follows each delay, so the default waits at most 2.55 s.
    """
    info = get_link(name)
    for delay in delays:
        if info.oper_state == "up":
            return info
        time.sleep(delay)
        info = get_link(name)
    if info.oper_state == "up":
        return info
    raise LinkNotUp(f"link '{name}' is not up: operational state {info.oper_state}", info.oper_state)


# --------------------------------------------------------------------------
# Creating links
# --------------------------------------------------------------------------


def _create_here(kind: str, ifname: str, netns_fd: int | None, **spec: Any) -> None:
    """RTM_NEWLINK in this thread's netns; the link lands in ``netns_fd`` when given."""
    if netns_fd is not None:
        spec["net_ns_fd"] = netns_fd
    try:
        with failing(f"create {kind} '{ifname}'"):
            if kind == "veth":  # the hot path: every bridge and ptp ADD makes one
                _create_veth(ifname, **spec)
            else:
                with rtnl() as ipr:
                    ipr.link("add", ifname=ifname, kind=kind, **spec)
    except UnsupportedKernelFeature as exc:
        # EOPNOTSUPP with "Unknown device type" (or no extended ack at
        # all) means the kind's driver is neither built in nor loadable;
        # with any other kernel text it is an option of a known kind.
        text = str(exc)
        if "Unknown device type" not in text and not text.endswith("operation not supported"):
            raise
        raise UnsupportedKernelFeature(
            f"failed to create {kind} '{ifname}': kernel does not support link type '{kind}'", errno=exc.errno
        ) from exc


def _create_veth(
    ifname: str, *, peer: dict[str, Any], mtu: int | None = None, address: str | None = None,
    net_ns_fd: int | None = None,
) -> None:
    """RTM_NEWLINK for a veth pair (create, exclusive): ``peer`` takes ifname, net_ns_fd and mtu."""
    peer_attrs = [("IFLA_IFNAME", peer["ifname"])]
    peer_attrs += [(name, peer[key]) for key, name in (("net_ns_fd", "IFLA_NET_NS_FD"), ("mtu", "IFLA_MTU"))
                   if peer.get(key) is not None]
    attrs: list[tuple[str, Any]] = [("IFLA_IFNAME", ifname)]
    attrs += [(name, value) for name, value in (("IFLA_MTU", mtu), ("IFLA_ADDRESS", address),
                                                 ("IFLA_NET_NS_FD", net_ns_fd)) if value is not None]
    info = {"attrs": [("IFLA_INFO_KIND", "veth"),
                      ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", {"attrs": peer_attrs})]})]}
    attrs.append(("IFLA_LINKINFO", info))
    _nlsync.request(_nlsync.link_msg(attrs=attrs), _nlsync.RTM_NEWLINK, _nlsync.NLM_F_CREATE | _nlsync.NLM_F_EXCL)


def _optional(mtu: int | None, mac: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if mtu:
        spec["mtu"] = mtu
    if mac:
        spec["address"] = mac
    return spec


def _create_stacked(
    kind: str, master: str, ifname: str, netns: NetnsRef, link_in_container: bool, spec: dict[str, Any]
) -> LinkInfo:
    """Create a link on top of ``master`` named ``ifname`` inside ``netns``.

    The master normally lives in the calling thread's namespace and the new
    link is created straight into the container; with ``link_in_container``
    both live in the container.
    """

    def in_container() -> LinkInfo:
        spec["link"] = _index_of(master, "master")
        _create_here(kind, ifname, None, **spec)
        return _get_here(ifname)

    if link_in_container:
        return run_in_netns(netns, in_container)

    spec["link"] = _index_of(master, "master")
    fd = netns if isinstance(netns, int) else open_netns(netns)
    try:
        _create_here(kind, ifname, fd, **spec)
        return run_in_netns(fd, _get_here, ifname)
    finally:
        if not isinstance(netns, int):
            os.close(fd)


def _index_of(name: str, role: str) -> int:
    """The ifindex of ``name`` here, with the role in the error ("failed to find master 'eth9'")."""
    try:
        return index_of(name)
    except LinkNotFound as exc:
        raise LinkNotFound(f"failed to find {role} '{name}': no such device", errno=exc.errno) from exc


def create_macvlan(
    master: str,
    ifname: str,
    netns: NetnsRef,
    *,
    mode: MacvlanMode = "bridge",
    mtu: int | None = None,
    mac: str | None = None,
    link_in_container: bool = False,
) -> LinkInfo:
    """Create a macvlan on ``master`` as ``ifname`` in ``netns`` (left down)."""
    spec = {"macvlan_mode": _MACVLAN_MODES[mode], **_optional(mtu, mac)}
    return _create_stacked("macvlan", master, ifname, netns, link_in_container, spec)


def create_ipvlan(
    master: str,
    ifname: str,
    netns: NetnsRef,
    *,
    mode: IpvlanMode = "l2",
    mtu: int | None = None,
    link_in_container: bool = False,
) -> LinkInfo:
    """Create an ipvlan on ``master`` as ``ifname`` in ``netns`` (left down)."""
    spec = {"ipvlan_mode": _IPVLAN_MODES[mode], **_optional(mtu, None)}
    return _create_stacked("ipvlan", master, ifname, netns, link_in_container, spec)


def create_vlan(
    master: str,
    vlan_id: int,
    ifname: str,
    netns: NetnsRef,
    *,
    mtu: int | None = None,
    link_in_container: bool = False,
) -> LinkInfo:
    """Create an 802.1q VLAN ``vlan_id`` on ``master`` as ``ifname`` in ``netns`` (left down)."""
    spec = {"vlan_id": vlan_id, **_optional(mtu, None)}
    return _create_stacked("vlan", master, ifname, netns, link_in_container, spec)


def create_dummy(ifname: str, netns: NetnsRef, *, mtu: int | None = None, mac: str | None = None) -> LinkInfo:
    """Create a dummy link ``ifname`` in ``netns`` (left down)."""

    def in_container() -> LinkInfo:
        _create_here("dummy", ifname, None, **_optional(mtu, mac))
        return _get_here(ifname)

    return run_in_netns(netns, in_container)


# <linux/if_tun.h>
_TUNSETIFF = 0x400454CA
_TUNSETPERSIST = 0x400454CB
_TUNSETOWNER = 0x400454CC
_TUNSETGROUP = 0x400454CE
_IFF_TAP = 0x0002
_IFF_MULTI_QUEUE = 0x0100
_IFF_VNET_HDR = 0x4000


def _create_tap_here(ifname: str, multi_queue: bool, owner: int | None, group: int | None) -> None:
    # tun/tap cannot be created over rtnetlink (the driver rejects it); the
    # device is made by TUNSETIFF on /dev/net/tun and kept by TUNSETPERSIST.
    # It belongs to the netns of the thread that opened /dev/net/tun.
    flags = _IFF_TAP | _IFF_VNET_HDR | (_IFF_MULTI_QUEUE if multi_queue else 0)
    ifreq = struct.pack("16sH22x", ifname.encode(), flags)
    with failing(f"create tap '{ifname}'"):
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
        try:
            fcntl.ioctl(fd, _TUNSETIFF, ifreq)
            if owner is not None:
                fcntl.ioctl(fd, _TUNSETOWNER, owner)
            if group is not None:
                fcntl.ioctl(fd, _TUNSETGROUP, group)
            fcntl.ioctl(fd, _TUNSETPERSIST, 1)
        finally:
            os.close(fd)


def create_tap(
    ifname: str,
    netns: NetnsRef,
    *,
    mtu: int | None = None,
    mac: str | None = None,
    multi_queue: bool = False,
    owner: int | None = None,
    group: int | None = None,
) -> LinkInfo:
    """Create a persistent tap device ``ifname`` in ``netns`` (left down)."""

    def in_container() -> LinkInfo:
        if _exists_here(ifname):
            raise LinkExists(f"failed to create tap '{ifname}': file exists", errno=errno.EEXIST)
        _create_tap_here(ifname, multi_queue, owner, group)
        try:
            if mtu:
                set_link_mtu(ifname, mtu)
            if mac:
                set_link_mac(ifname, mac)
        except BaseException:
            _delete_here(ifname, missing_ok=True)
            raise
        return _get_here(ifname)

    return run_in_netns(netns, in_container)


def _exists_here(name: str) -> bool:
    try:
        _get_here(name)
    except LinkNotFound:
        return False
    return True


def create_veth_pair(
    container_ifname: str,
    container_netns: NetnsRef,
    *,
    host_ifname: str | None = None,
    mtu: int | None = None,
    container_mac: str | None = None,
) -> tuple[LinkInfo, LinkInfo]:
    """Create a veth pair between the calling thread's netns (host) and ``container_netns``.

    The container end is ``container_ifname`` (left down; ConfigureIface
    brings it up); the host end is ``host_ifname`` or "veth" + 8 random hex
    digits, retried on collision. The host end is brought up with
    ``accept_ra=0``. Returns ``(host, container)``.
    """
    host_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        host_name, container = run_in_netns(
            container_netns, _create_veth_in_container, container_ifname, host_fd, host_ifname, mtu, container_mac
        )
    finally:
        os.close(host_fd)
    with session():
        try:
            set_link_up(host_name)
            try:
                write_sysctl(iface_key(6, host_name, "accept_ra"), 0)
            except NetError as exc:
                # IPv6 may be disabled on the host: then there is nothing to accept.
                if exc.errno != errno.ENOENT:
                    raise
            host = _get_here(host_name)
        except BaseException:
            _delete_here(host_name, missing_ok=True)
            raise
    return host, container


def _create_veth_in_container(
    ifname: str, host_fd: int, host_ifname: str | None, mtu: int | None, mac: str | None
) -> tuple[str, LinkInfo]:
    """Inside the container: create ``ifname`` with its peer pushed to the host; returns (host name, container)."""
    exists = LinkExists(f"container veth name provided ({ifname}) already exists", errno=errno.EEXIST)
    if _exists_here(ifname):
        raise exists
    for _ in range(_VETH_NAME_TRIES):
        peer_name = host_ifname or random_ifname("veth")
        peer: dict[str, Any] = {"ifname": peer_name, "net_ns_fd": host_fd}
        if mtu:
            peer["mtu"] = mtu
        try:
            _create_here("veth", ifname, None, peer=peer, **_optional(mtu, mac))
        except LinkExists:
            # EEXIST names neither end: it is ours if the container name
            # appeared meanwhile, else the host name was taken.
            if _exists_here(ifname):
                raise exists from None
            if host_ifname:
                raise LinkExists(
                    f"failed to create veth pair: host veth name '{host_ifname}' already exists", errno=errno.EEXIST
                ) from None
            continue
        return peer_name, _get_here(ifname)
    raise LinkExists(
        f"failed to create veth pair: no free host veth name after {_VETH_NAME_TRIES} tries", errno=errno.EEXIST
    )
