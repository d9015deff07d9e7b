"""The compiled shim (``cshim.c``): build it once per source and compiler, patch its configuration per plugin.

Contract:

- ``build_shim_binary()`` compiles ``cshim.c`` with ``$CC`` (default ``cc``)
  into a cache keyed by the source, the compiler and the flags
  (``$XDG_CACHE_HOME/pycni``, ``/var/cache/pycni`` for root, else
  ``~/.cache/pycni``; a private temporary directory when none of them is a
  directory of ours nobody else may write to), and returns the binary's
  bytes; None when there is no compiler or compilation fails
  (``build_error()`` says why). Cache entries are written to a temporary
  name and renamed: parallel builds just race to write the same bytes.
- ``render_cshim(...)`` is those bytes with the configuration area patched
  (``pycni.shimfile.patch_config``: the file format, and how to read it
  back, live there, where every layer may read a shim). ValueError when a
  value cannot be written (a newline or NUL in it, or too long).
"""

from __future__ import annotations

import contextlib
import os

from pycni.shimfile import config_area_offset, patch_config

CFLAGS = ("-O2", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-s")
SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cshim.c")

_built: bytes | None = None
_error = ""


def build_shim_binary() -> bytes | None:
    """The compiled, unconfigured shim (cached on disk and in this process); None when it cannot be built."""
    global _built, _error
    if _built is None:
        try:
            _built = _build()
            _error = ""
        except _BuildError as exc:
            _error = str(exc)
            return None
    return _built


def build_error() -> str:
    """Why the last ``build_shim_binary()`` returned None."""
    return _error


def render_cshim(plugin_type: str, python: str, roots: list[str], socket: str | None = None) -> bytes:
    """The shim binary for ``plugin_type``: runs ``python`` with ``roots`` when the executor on ``socket`` won't."""
    binary = build_shim_binary()
    if binary is None:
        raise ValueError(f"the C shim cannot be built: {build_error()}")
    return patch_config(binary, plugin_type, python, roots, socket)


# -- building ------------------------------------------------------------------


class _BuildError(Exception):
    pass


def _compiler() -> list[str]:
    import shlex
    import shutil

    words = shlex.split(os.environ.get("CC") or "cc")
    path = shutil.which(words[0]) if words else None
    if path is None:
        raise _BuildError(f"no C compiler ({words[0] if words else '$CC is empty'} not found)")
    return [path, *words[1:]]


def _build() -> bytes:
    import hashlib

    try:
        with open(SOURCE, "rb") as f:
            source = f.read()
    except OSError as exc:
        raise _BuildError(f"cannot read {SOURCE}: {exc.strerror}") from None
    compiler = _compiler()
    key = hashlib.sha256(b"\0".join([source, *(w.encode() for w in compiler), *(f.encode() for f in CFLAGS)]))
    name = f"cshim-{key.hexdigest()[:24]}"
    cache = _cache_dir()
    if cache is not None:
        cached = _read_valid(os.path.join(cache, name))
        if cached is not None:
            return cached
    import tempfile

    with tempfile.TemporaryDirectory(prefix="pycni-cshim-") as scratch:
        out = os.path.join(scratch, name)
        binary = _compile(compiler, out)
        if cache is not None:
            _store(os.path.join(cache, name), binary)
    return binary


def _store(path: str, binary: bytes) -> None:
    """Write ``binary`` to ``path`` atomically; a cache we cannot write to only costs a compile next time."""
    import tempfile

    try:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=f".{os.path.basename(path)}-")
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as out_file:
            out_file.write(binary)
        os.chmod(tmp, 0o755)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _compile(compiler: list[str], out: str) -> bytes:
    import subprocess

    cmd = [*compiler, *CFLAGS, "-o", out, SOURCE]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _BuildError(f"{' '.join(cmd)}: {exc}") from None
    if proc.returncode != 0:
        raise _BuildError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    binary = _read_valid(out)
    if binary is None:
        raise _BuildError(f"{compiler[0]} built {out} without exactly one configuration area early in the file")
    return binary


def _read_valid(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            binary = f.read()
    except OSError:
        return None
    return binary if config_area_offset(binary) is not None else None


def _cache_dir() -> str | None:
    """A directory owned by us that no one else can write to (created 0700), or None."""
    import tempfile

    xdg = os.environ.get("XDG_CACHE_HOME")
    candidates = [os.path.join(xdg, "pycni")] if xdg and os.path.isabs(xdg) else []
    if os.geteuid() == 0:
        candidates.append("/var/cache/pycni")
    candidates.append(os.path.join(os.path.expanduser("~"), ".cache", "pycni"))
    candidates.append(os.path.join(tempfile.gettempdir(), f"pycni-{os.geteuid()}"))
    for directory in candidates:
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            st = os.lstat(directory)
        except OSError:
            continue
        # a binary root installs must not come from a directory someone else can write to
        import stat

        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o022:
            return directory
    return None
