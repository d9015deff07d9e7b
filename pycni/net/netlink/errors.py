"""Kernel errors become pycni's: the one place that turns errnos into ``NetError`` subclasses.

Contract:

- ``failing(action)`` converts an OSError or a pyroute2 ``NetlinkError``
  raised in its block into a ``NetError`` subclass whose message is
  "failed to <action>: <cause>"; a ``NetError`` passes through untouched and
  any other exception propagates as it is.
- ``describe(exc)`` is that cause: the errno's text in lower case (as Go
  prints it), plus the kernel's extended ack in parentheses when it says
  more ("operation not supported (Unknown device type)").
- Nothing here imports pyroute2: an exception can only be one of its
  errors if pyroute2 was already imported.
"""

from __future__ import annotations

import errno as errno_mod
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from pycni.net.errors import LinkExists, LinkNotFound, NetError, UnsupportedKernelFeature

__all__ = ["describe", "errno_of", "failing", "strerror"]

_BY_ERRNO: dict[int, type[NetError]] = {
    errno_mod.ENODEV: LinkNotFound,
    errno_mod.EEXIST: LinkExists,
    errno_mod.EOPNOTSUPP: UnsupportedKernelFeature,
}


def strerror(code: int) -> str:
    """The errno's description, lower-cased as Go prints it ("no such device")."""
    text = os.strerror(code)
    return text[:1].lower() + text[1:]


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
    cause = strerror(code)
    extra = ""
    if isinstance(exc, OSError):
        extra = exc.strerror or ""
    elif len(exc.args) > 1 and isinstance(exc.args[1], str):
        extra = exc.args[1]
    if extra and extra != text:
        cause = f"{cause} ({extra})"
    return cause


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
