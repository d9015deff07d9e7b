"""Installing plugin shims in a CNI bin dir: the library under ``pycni install`` and ``pycni lab``.

Contract:

- ``install_plugins(bin_dir, types, ...)`` writes one shim per plugin type
  (all of pycni's by default) and returns an ``InstallReport``; it never
  prints. ``shim`` is "auto" (the C shim where it builds, else the Python
  one; the report says why), "c" or "python". A file pycni did not install
  is replaced only with ``force``; otherwise it is reported as skipped.
  Each file is written to a temporary name and renamed, so a runtime
  exec'ing the plugin meanwhile sees the old file or the new one.
- ``uninstall_plugins(bin_dir)`` removes the shims any pycni installed there
  and nothing else.
- Bad requests (an unknown type, an unknown kind, ``shim="c"`` where the C
  shim cannot be built or configured) raise ``InstallError`` before or
  instead of writing.

The file format (markers, rendering, reading back) is ``pycni.shimfile``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pycni.shimfile import import_roots, is_pycni_shim, python_shim
from pycni.spec.errors import CniError

__all__ = [
    "SHIM_KINDS",
    "InstallError",
    "InstallReport",
    "ShimInstall",
    "install_plugins",
    "render_cshim",
    "render_shim",
    "uninstall_plugins",
    "write_file",
]

SHIM_KINDS = ("auto", "c", "python")


class InstallError(CniError):
    """The install request cannot be done as asked; nothing more was written."""


@dataclass(frozen=True)
class ShimInstall:
    """What ``install_plugins`` did with one plugin type's file."""

    path: Path
    #: "replaced": the file was not pycni's (``force``); "skipped": it was not pycni's, so it was left alone.
    action: Literal["installed", "replaced", "skipped"]
    #: Why this is a Python shim although the C shim was wanted ("" otherwise).
    python_because: str = ""


@dataclass(frozen=True)
class InstallReport:
    shims: tuple[ShimInstall, ...]
    #: ``shim="auto"`` and the C shim cannot be built: why every shim is a Python one.
    no_c_shim: str = ""

    @property
    def written(self) -> list[Path]:
        return [s.path for s in self.shims if s.action != "skipped"]

    @property
    def skipped(self) -> list[Path]:
        return [s.path for s in self.shims if s.action == "skipped"]


def render_shim(plugin_type: str, python: str | None = None, executor_socket: str | None = None) -> str:
    """The Python shim for ``plugin_type``; ``executor_socket`` replaces the default socket it forwards to."""
    return python_shim(plugin_type, python or sys.executable, import_roots(), executor_socket)


def render_cshim(plugin_type: str, python: str | None = None, executor_socket: str | None = None) -> bytes:
    """The compiled shim for ``plugin_type``; ValueError when it cannot be built or configured."""
    from pycni.executor.cshim import render_cshim as render

    return render(plugin_type, python or sys.executable, import_roots(), executor_socket)


def install_plugins(
    bin_dir: str | os.PathLike[str],
    types: Sequence[str] | None = None,
    *,
    shim: str = "auto",
    executor_socket: str | None = None,
    force: bool = False,
) -> InstallReport:
    """Write a shim for each of ``types`` (default: every pycni plugin) into ``bin_dir``."""
    from pycni.plugins import PLUGIN_MODULES

    wanted = list(types) if types else sorted(PLUGIN_MODULES)
    unknown = [p for p in wanted if p not in PLUGIN_MODULES]
    if unknown:
        raise InstallError(f"unknown plugin type(s): {', '.join(unknown)}")
    compiled, no_c_shim = _use_compiled_shim(shim)
    os.makedirs(bin_dir, exist_ok=True)
    done = []
    for plugin_type in wanted:
        target = Path(bin_dir, plugin_type)
        foreign = os.path.lexists(target) and not is_pycni_shim(str(target))
        if foreign and not force:
            done.append(ShimInstall(target, "skipped"))
            continue
        content: str | bytes = ""
        because = ""
        if compiled:
            try:
                content = render_cshim(plugin_type, executor_socket=executor_socket)
            except ValueError as exc:  # e.g. import roots too long for the configuration area
                if compiled == "c":
                    raise InstallError(f"--shim c: {exc}") from None
                because = str(exc)
        write_file(str(target), content or render_shim(plugin_type, executor_socket=executor_socket), 0o755)
        done.append(ShimInstall(target, "replaced" if foreign else "installed", because))
    return InstallReport(tuple(done), no_c_shim)


def uninstall_plugins(bin_dir: str | os.PathLike[str]) -> list[Path]:
    """Remove the shims of pycni's plugin types that a pycni installed in ``bin_dir``; the paths removed."""
    from pycni.plugins import PLUGIN_MODULES

    removed = []
    for plugin_type in sorted(PLUGIN_MODULES):
        target = Path(bin_dir, plugin_type)
        if is_pycni_shim(str(target)):
            os.unlink(target)
            removed.append(target)
    return removed


def _use_compiled_shim(kind: str) -> tuple[str, str]:
    """(``kind`` when the C shim is to be installed and can be built else "", why auto could not build it)."""
    if kind not in SHIM_KINDS:
        raise InstallError(f"--shim must be one of {', '.join(SHIM_KINDS)}, not {kind!r}")
    if kind == "python":
        return "", ""
    from pycni.executor.cshim import build_error, build_shim_binary

    if build_shim_binary() is not None:
        return kind, ""
    if kind == "c":
        raise InstallError(f"--shim c: cannot build the C shim: {build_error()}")
    return "", build_error()


def write_file(path: str, content: str | bytes, mode: int) -> None:
    """Write ``path`` with ``mode`` atomically."""
    # Write then rename: a runtime exec'ing the plugin mid-install sees the
    # old file or the new one, never half of one ("text file busy" avoided too).
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".pycni-")
    try:
        with os.fdopen(fd, "wb" if isinstance(content, bytes) else "w") as f:
            f.write(content)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
