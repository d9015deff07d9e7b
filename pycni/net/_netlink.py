"""The one place that imports pyroute2 and turns its errors into ours.

Contract:

- ``rtnl()`` yields an ``IPRoute`` bound to the *calling thread's* network
  namespace. pyroute2 0.9 keeps per-thread sockets inside one IPRoute, and a
  socket's netns is fixed when it is created, so a handle must never leave
  the thread that opened it; nothing here hands one out beyond a ``with``.
- Inside ``session()`` every ``rtnl()`` of this thread reuses one handle per
  netns (keyed by the netns inode); outside it each ``rtnl()`` opens and
  closes its own. ``run_in_netns`` wraps its target in a session, so one
  plugin step costs one socket, not one per helper call.
- ``failing(action)`` converts pyroute2/OSError exceptions raised in its
  block into ``NetError`` subclasses with "failed to <action>: <cause>".
- pyroute2 is imported on first use: importing pycni.net stays cheap.
"""

from __future__ import annotations

import errno as errno_mod
import importlib
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pycni.net.errors import LinkExists, LinkNotFound, NetError, UnsupportedKernelFeature

# pyroute2 has no type information; its handles and messages are Any here and
# never escape this package as anything but our own dataclasses.
IPRoute = Any
Message = Any

_local = threading.local()
_import_lock = threading.Lock()


def _pyroute2() -> Any:
    """The whole pyroute2 package (IPRoute, Conntrack, ...), imported on first use.

    Deferred: importing pyroute2 costs ~400 ms, which a plugin that only
    answers VERSION must not pay. If ``pyroute2_submodule`` left the
    package uninitialised, its ``__init__`` runs now, into the same module.
    import_module also keeps mypy from wanting stubs pyroute2 doesn't ship.
    """
    with _import_lock:
        package = sys.modules.get("pyroute2")
        if package is not None and getattr(package, "_pycni_uninitialised", False):
            del package._pycni_uninitialised
            loader: Any = package.__spec__.loader  # type: ignore[union-attr]  # made from a spec with a loader
            loader.exec_module(package)
    return importlib.import_module("pyroute2")


def pyroute2_submodule(name: str) -> Any:
    """``pyroute2.<name>`` (e.g. "netlink.rtnl.ifinfmsg") without initialising the whole package.

    pyroute2's ``__init__`` imports every API it has (NDB, IPDB, conntrack,
    ...): ~400 ms. The message classes the hot path encodes with need ~70
    ms of it. So when nothing has imported pyroute2 yet, the package is
    registered uninitialised (a module with its ``__path__`` only) and just
    the submodule loads; ``_pyroute2()`` finishes the package if asked later.
    """
    with _import_lock:
        if "pyroute2" not in sys.modules:
            from importlib import util as importlib_util

            spec = importlib_util.find_spec("pyroute2")
            if spec is not None and spec.loader is not None:
                package = importlib_util.module_from_spec(spec)
                package._pycni_uninitialised = True  # type: ignore[attr-defined]
                sys.modules["pyroute2"] = package
    return importlib.import_module(f"pyroute2.{name}")


def thread_netns_inode() -> int:
    """The inode of the calling thread's netns (threads may differ after setns)."""
    return os.stat("/proc/thread-self/ns/net").st_ino


def _open_iproute() -> IPRoute:
    # ext_ack: the kernel's extended ack text ("Unknown device type") is far
    # more helpful in an error message than the bare errno.
    return _pyroute2().IPRoute(ext_ack=True)


@contextmanager
def session() -> Iterator[None]:
    """Share one netlink handle per netns among all ``rtnl()`` calls of this thread in the block."""
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


def errno_of(exc: BaseException) -> int | None:
    """The errno carried by a pyroute2 NetlinkError or an OSError, else None."""
    if isinstance(exc, OSError):
        return exc.errno
    # If pyroute2 was never imported, exc cannot be one of its errors.
    exceptions = sys.modules.get("pyroute2.netlink.exceptions")
    if exceptions is not None and isinstance(exc, exceptions.NetlinkError):
        return int(exc.code)
    return None


def describe(exc: BaseException) -> str:
    """A Go-style lower-case cause: the errno text, plus the kernel's extended ack when it says more."""
    code = errno_of(exc)
    if code is None:
        return str(exc)
    text = os.strerror(code)
    cause = text[:1].lower() + text[1:]
    extra = ""
    if isinstance(exc, OSError):
        extra = exc.strerror or ""
    elif len(exc.args) > 1 and isinstance(exc.args[1], str):
        extra = exc.args[1]
    if extra and extra != text:
        cause = f"{cause} ({extra})"
    return cause


_BY_ERRNO: dict[int, type[NetError]] = {
    errno_mod.ENODEV: LinkNotFound,
    errno_mod.EEXIST: LinkExists,
    errno_mod.EOPNOTSUPP: UnsupportedKernelFeature,
}


@contextmanager
def failing(action: str, *, by_errno: dict[int, type[NetError]] | None = None) -> Iterator[None]:
    """Translate kernel errors raised in the block into "failed to <action>: <cause>".

    ``by_errno`` overrides which NetError subclass an errno becomes; by
    default ENODEV is LinkNotFound, EEXIST LinkExists, EOPNOTSUPP
    UnsupportedKernelFeature and anything else plain NetError.
    """
    try:
        yield
    except NetError:
        raise
    except Exception as exc:
        code = errno_of(exc)
        if code is None:
            raise
        table = _BY_ERRNO if by_errno is None else {**_BY_ERRNO, **by_errno}
        cls = table.get(code, NetError)
        raise cls(f"failed to {action}: {describe(exc)}", errno=code) from exc


def get_link_msg(ipr: IPRoute, name: str) -> Message:
    """The RTM_NEWLINK message for a link name in the handle's netns; LinkNotFound if absent."""
    # A "get" by name is one kernel lookup; link_lookup() would dump every link.
    # ERANGE is the kernel's answer for a name longer than IFNAMSIZ: such a
    # link cannot exist, which is what a caller asking for it needs to know.
    with failing(f"find link '{name}'", by_errno={errno_mod.ERANGE: LinkNotFound}):
        return ipr.link("get", ifname=name)[0]


def link_index(ipr: IPRoute, name: str) -> int:
    """Resolve a link name in the handle's netns (the calling thread's); LinkNotFound if absent."""
    # One ioctl (~3 µs) instead of a decoded RTM_GETLINK through pyroute2 (~0.6 ms).
    from pycni.net.linkquery import index_of

    return index_of(name)


def attr(msg: Message, name: str, default: Any = None) -> Any:
    """One netlink attribute by its full NLA name (``IFLA_MTU``), or ``default``."""
    value = msg.get_attr(name)
    return default if value is None else value
