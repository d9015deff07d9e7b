"""What a private podman needs from the host (prerequisites) and the cgroups it must clean up there.

See ``tests.support.podman`` for why each tool is needed and why conmon's
cgroups outlive their containers under cgroupfs.
"""

from __future__ import annotations

import os
import shutil
import struct
import time
from pathlib import Path

import pytest

__all__ = ["BUSYBOX", "REQUIRED_TOOLS", "cgroup_dirs", "missing_prerequisite", "remove_cgroup",
           "require_prerequisites"]

BUSYBOX = "/bin/busybox"
REQUIRED_TOOLS = ("podman", "runc", "conmon", "nsenter", "unshare", "ip")


def _is_static_elf(path: str) -> bool:
    """True if the ELF file at path has no PT_INTERP (needs no dynamic loader)."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit only, which is all Debian amd64/arm64 ship
            return False
        endian = "<" if head[5] == 1 else ">"
        (phoff,) = struct.unpack_from(endian + "Q", head, 0x20)
        phentsize, phnum = struct.unpack_from(endian + "HH", head, 0x36)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(struct.unpack_from(endian + "I", table, i * phentsize)[0] != 3 for i in range(phnum))


def missing_prerequisite() -> str | None:
    if os.geteuid() != 0:
        return "needs root to run podman rootful with the CNI backend"
    for tool in REQUIRED_TOOLS:
        if not shutil.which(tool):
            return f"needs '{tool}' (Debian packages: podman runc conmon util-linux iproute2)"
    if not os.path.exists(BUSYBOX) or not _is_static_elf(BUSYBOX):
        return f"needs a static {BUSYBOX} for the container image (Debian package busybox-static)"
    return None


def require_prerequisites() -> None:
    reason = missing_prerequisite()
    if reason is None:
        return
    if os.environ.get("PYCNI_REQUIRE_KERNEL_TESTS") == "1":
        pytest.fail(f"podman runtime test prerequisite missing: {reason}")
    pytest.skip(reason)


def cgroup_dirs(relative: str) -> list[str]:
    base = Path("/sys/fs/cgroup")
    if (base / "cgroup.controllers").exists():  # pure cgroup v2
        return [str(base / relative)]
    return [str(h / relative) for h in sorted(base.iterdir()) if h.is_dir()]


def remove_cgroup(relative: str, quiet: bool = False) -> list[str]:
    """rmdir a cgroup (children first) in every hierarchy; cgroups with tasks stay."""
    problems = []
    for top in cgroup_dirs(relative):
        if not os.path.isdir(top):
            continue
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: -len(w[0])):
            for attempt in range(20):
                try:
                    os.rmdir(dirpath)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if attempt == 19:
                        if not quiet:
                            problems.append(f"cgroup {dirpath}: {e}")
                    else:
                        time.sleep(0.05)  # conmon may still be exiting
    return problems
