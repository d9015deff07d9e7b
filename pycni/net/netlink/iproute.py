"""pyroute2's ``IPRoute`` handles, for the requests the hot path does not make (tc, vxlan, rules, ...).

Contract:

- ``rtnl()`` yields an ``IPRoute`` bound to the *calling thread's* network
  namespace. pyroute2 0.9 keeps per-thread sockets inside one IPRoute, and a
  socket's netns is fixed when it is created, so a handle must never leave
  the thread that opened it; nothing here hands one out beyond a ``with``.
- Inside ``session()`` every ``rtnl()`` of this thread reuses one handle per
  netns (keyed by the netns inode); outside it each ``rtnl()`` opens and
  closes its own. ``run_in_netns`` wraps its target in a session. Requests
  sent through ``messages.request`` / ``wire.exchange`` do not use these
  handles: they open a plain socket per request.
- ``get_link_msg(ipr, name)``: pyroute2's fully decoded RTM_NEWLINK for a
  name (for attributes ``lookup`` does not decode); LinkNotFound if absent.
- Importing this module does not import pyroute2; the first handle does.
"""

from __future__ import annotations

import errno as errno_mod
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from pycni.net.errors import LinkNotFound
from pycni.net.netlink.errors import failing
from pycni.net.netlink.messages import Message, pyroute2

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~4 ms, with re and enum, of a cold plugin call)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["IPRoute", "get_link_msg", "rtnl", "session", "thread_netns_inode"]

# pyroute2 has no type information; its handles are Any here (a name for annotations only).
if TYPE_CHECKING:
    IPRoute = Any
else:
    IPRoute = object

_local = threading.local()


def thread_netns_inode() -> int:
    """The inode of the calling thread's netns (threads may differ after setns)."""
    return os.stat("/proc/thread-self/ns/net").st_ino


def _open_iproute() -> IPRoute:
    # ext_ack: the kernel's extended ack text ("Unknown device type") is far
    # more helpful in an error message than the bare errno.
    return pyroute2().IPRoute(ext_ack=True)


@contextmanager
def session() -> Iterator[None]:
    """Share one IPRoute handle per netns among all ``rtnl()`` calls of this thread in the block."""
    if getattr(_local, "handles", None) is not None:
        yield  # nested: the outer session owns the handles
        return
    handles: dict[int, IPRoute] = {}
    _local.handles = handles
    try:
        yield
    finally:
        _local.handles = None
        for handle in handles.values():
            handle.close()


@contextmanager
def rtnl() -> Iterator[IPRoute]:
    """An rtnetlink handle in the calling thread's netns (shared inside a ``session()``)."""
    handles: dict[int, IPRoute] | None = getattr(_local, "handles", None)
    if handles is None:
        handle = _open_iproute()
        try:
            yield handle
        finally:
            handle.close()
        return
    inode = thread_netns_inode()
    handle = handles.get(inode)
    if handle is None:
        handle = handles[inode] = _open_iproute()
    yield handle


def get_link_msg(ipr: IPRoute, name: str) -> Message:
    """The RTM_NEWLINK message for a link name in the handle's netns; LinkNotFound if absent."""
    # A "get" by name is one kernel lookup; link_lookup() would dump every link.
    # ERANGE is the kernel's answer for a name longer than IFNAMSIZ: such a
    # link cannot exist, which is what a caller asking for it needs to know.
    with failing(f"find link '{name}'", by_errno={errno_mod.ERANGE: LinkNotFound}):
        return ipr.link("get", ifname=name)[0]
