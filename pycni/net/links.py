"""Links: look them up, change and delete them (creating them is in ``veth``, ``stacked`` and ``tap``).

Contract:

- Functions act in the calling thread's network namespace unless they take
  a ``netns``; those that do open it with ``open_netns`` (never creating it)
  and do their in-namespace work via ``run_in_netns``.
- A link is named by its name; results are frozen ``LinkInfo`` snapshots.
- Missing links raise ``LinkNotFound``, missing namespaces ``NetnsNotFound``;
  ``delete_link(..., missing_ok=True)`` turns both into a ``False`` return so
  DEL paths stay one line. A link type the kernel lacks raises
  ``UnsupportedKernelFeature`` ("kernel does not support link type 'ipvlan'").
- Interface names are at most 15 bytes (IFNAMSIZ - 1); bridge-specific
  helpers live in ``pycni.net.bridge``.
- Lookups are ``netlink.lookup``'s hand-decoded RTM_GETLINK; changes and
  deletions are one ``netlink.messages.request`` each.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from pycni.net.errors import LinkNotFound, LinkNotUp, NetnsNotFound
from pycni.net.netlink import messages
from pycni.net.netlink.errors import failing
from pycni.net.netlink.lookup import RawLink, dump_links, index_of, kind_u16, kind_u32, query_link
from pycni.net.netlink.wire import RTM_DELLINK, RTM_NEWLINK
from pycni.net.netns import NetnsRef, open_netns, run_in_netns
from pycni.spec.record import record

__all__ = [
    "IPVLAN_MODES",
    "MACVLAN_MODES",
    "OPER_DELAYS",
    "LinkInfo",
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

#: IFLA_MACVLAN_MODE and IFLA_IPVLAN_MODE values by name (``LinkInfo.mode`` spells them so).
MACVLAN_MODES: dict[str, int] = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8, "source": 16}
IPVLAN_MODES: dict[str, int] = {"l2": 0, "l3": 1, "l3s": 2}

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


@record
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
        return None if mode is None else next((k for k, v in MACVLAN_MODES.items() if v == mode), str(mode))
    if raw.kind == "ipvlan":
        mode = kind_u16(raw, _IFLA_MODE)
        return None if mode is None else next((k for k, v in IPVLAN_MODES.items() if v == mode), str(mode))
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


def get_link(name: str, netns: NetnsRef | None = None) -> LinkInfo:
    """The link called ``name``; LinkNotFound if there is none."""
    return _get_here(name) if netns is None else run_in_netns(netns, _get_here, name)


def _get_here(name: str) -> LinkInfo:
    return _to_info(query_link(name=name))


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


def _set(name: str, action: str, *, flags: int = 0, change: int = 0, attrs: messages.Attrs = ()) -> None:
    index = index_of(name)
    with failing(f"{action} of link '{name}'"):
        messages.request(messages.link_msg(index, flags=flags, change=change, attrs=attrs), RTM_NEWLINK)


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
        messages.request(messages.link_msg(index, attrs=[("IFLA_MASTER", master_index)]), RTM_NEWLINK)


def rename_link(name: str, new_name: str) -> None:
    """Rename a link (most kernels require it to be down)."""
    index = index_of(name)
    with failing(f"rename link '{name}' to '{new_name}'"):
        messages.request(messages.link_msg(index, attrs=[("IFLA_IFNAME", new_name)]), RTM_NEWLINK)


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
        index = index_of(name)
        changes: list[tuple[str, object]] = [("IFLA_NET_NS_FD", fd)]
        if new_name is not None:
            changes.append(("IFLA_IFNAME", new_name))
        target = new_name or name
        with failing(f"move link '{name}' to netns '{netns}' as '{target}'"):
            messages.request(messages.link_msg(index, attrs=changes), RTM_NEWLINK)
    finally:
        if not isinstance(netns, int):
            os.close(fd)


def _delete_here(name: str, missing_ok: bool) -> bool:
    try:
        index = index_of(name)
        with failing(f"delete link '{name}'"):
            messages.request(messages.link_msg(index), RTM_DELLINK)
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
