"""Errors raised by pycni.net.

Every kernel failure leaves this package as a ``NetError`` (a ``CniError``,
so skel can report it) with a message shaped like
``failed to <verb> <object> '<name>': <cause>``. The subclasses exist so a
caller can react to *what* went wrong without parsing text: DEL paths treat
``NetnsNotFound`` and ``LinkNotFound`` as success, a test skips on
``UnsupportedKernelFeature``.
"""

from __future__ import annotations

from pycni.spec.errors import CniError

__all__ = [
    "AddressConflict",
    "LinkExists",
    "LinkNotFound",
    "LinkNotUp",
    "NetError",
    "NetnsNotFound",
    "NotANetns",
    "UnsupportedKernelFeature",
]


class NetError(CniError):
    """A kernel operation failed; ``errno`` is the kernel's error number when there was one."""

    def __init__(self, msg: str, details: str = "", *, errno: int | None = None) -> None:
        super().__init__(msg, details)
        self.errno = errno


class NetnsNotFound(NetError):
    """The network namespace path does not exist (the container is gone)."""


class NotANetns(NetError):
    """The path exists but is not a network namespace (not nsfs/procfs, or another namespace type)."""


class LinkNotFound(NetError):
    """No link with that name (or index) in the namespace."""


class LinkExists(NetError):
    """A link with the requested name already exists."""


class UnsupportedKernelFeature(NetError):
    """The running kernel lacks a link type or feature (e.g. ipvlan, 802.1q, bridge VLAN filtering)."""


class AddressConflict(NetError):
    """The link already carries an address that conflicts with the one requested."""


class LinkNotUp(NetError):
    """A link did not reach operational state "up" in time; ``state`` is the last one seen."""

    def __init__(self, msg: str, state: str) -> None:
        super().__init__(msg)
        self.state = state
