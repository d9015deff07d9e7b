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
- ``render_cshim(...)`` is those bytes with the configuration area patched:
  the marker line, then ``type=``, ``socket=``, ``python=`` and one
  ``root=`` per import root, NUL padded to ``CONFIG_SIZE``. ValueError when
  a value cannot be written (a newline or NUL in it, or too long).
- ``read_cshim_config(path_or_bytes)`` reads such an area back (``{key:
  [values]}``), None when it is not a pycni C shim.
"""

from __future__ import annotations

import contextlib
import os

MARKER = b"pycni-shim-config-v1\n"
CONFIG_SIZE = 4096  # the size of ``config`` in cshim.c
MAX_ROOTS = 64  # MAX_ROOTS in cshim.c
#: The area must start this early in the file, so reading a file's head finds it.
SCAN_LIMIT = 1 << 16
CFLAGS = ("-O2", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-s")
SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cshim.c")
ELF_MAGIC = b"\x7fELF"
_DEFAULT_SOCKET = "/run/pycni/executor.sock"

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


def patch_config(binary: bytes, plugin_type: str, python: str, roots: list[str], socket: str | None = None) -> bytes:
    """``binary`` (an unconfigured shim) with its configuration area written."""
    offset = _area_offset(binary)
    if offset is None:
        raise ValueError("not a pycni C shim (no configuration area)")
    if not 0 < len(plugin_type.encode()) <= 64:
        raise ValueError(f"plugin type must be 1-64 bytes: {plugin_type!r}")
    if not python or not os.path.isabs(python):
        raise ValueError(f"python must be an absolute path: {python!r}")
    if len(roots) > MAX_ROOTS:
        raise ValueError(f"at most {MAX_ROOTS} import roots, not {len(roots)}")
    items = [("type", plugin_type), ("socket", socket or _DEFAULT_SOCKET), ("python", python)]
    items += [("root", root) for root in roots]
    lines = []
    for key, value in items:
        raw = os.fsencode(value)
        if b"\n" in raw or b"\0" in raw:
            raise ValueError(f"{key} {value!r} contains a newline or NUL")
        lines.append(key.encode() + b"=" + raw + b"\n")
    area = MARKER + b"".join(lines)
    if len(area) >= CONFIG_SIZE:  # at least one NUL must end it
        raise ValueError(f"the shim's configuration ({len(area)} bytes) does not fit in {CONFIG_SIZE - 1} bytes")
    return binary[:offset] + area.ljust(CONFIG_SIZE, b"\0") + binary[offset + CONFIG_SIZE :]


def read_cshim_config(source: str | bytes) -> dict[str, list[str]] | None:
    """The configuration of the C shim at path ``source`` (or in the bytes of one); None for any other file."""
    if isinstance(source, str):
        try:
            with open(source, "rb") as f:
                if f.read(4) != ELF_MAGIC:
                    return None
                data = ELF_MAGIC + f.read(SCAN_LIMIT + CONFIG_SIZE)
        except OSError:
            return None
    else:
        data = source
    if not data.startswith(ELF_MAGIC):
        return None
    offset = data.find(MARKER, 0, SCAN_LIMIT + len(MARKER))
    if offset < 0:
        return None
    area = data[offset + len(MARKER) : offset + CONFIG_SIZE].split(b"\0", 1)[0]
    config: dict[str, list[str]] = {}
    for line in area.split(b"\n")[:-1]:  # each line ends with a newline
        key, sep, value = line.partition(b"=")
        if sep:
            config.setdefault(key.decode("ascii", "replace"), []).append(os.fsdecode(value))
    return config


# -- building ------------------------------------------------------------------


class _BuildError(Exception):
    pass


def _area_offset(binary: bytes) -> int | None:
    """Where the configuration area starts: the only marker, early enough, in an ELF file."""
    offset = binary.find(MARKER)
    if (
        not binary.startswith(ELF_MAGIC)
        or offset < 0
        or offset > SCAN_LIMIT
        or binary.find(MARKER, offset + 1) >= 0
        or len(binary) < offset + CONFIG_SIZE
    ):
        return None
    return offset


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
    return binary if _area_offset(binary) is not None else None


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
