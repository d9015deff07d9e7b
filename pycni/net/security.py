"""Host security modules, as far as plugins need to know about them."""

from __future__ import annotations

import os

__all__ = ["selinux_enabled"]


def selinux_enabled() -> bool:
    """True if SELinux is active on this host (selinuxfs mounted with an ``enforce`` file)."""
    return os.path.exists("/sys/fs/selinux/enforce")
