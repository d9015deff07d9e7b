"""The executor's wire format: pure functions from values to bytes and back.

One connection carries one plugin call, over a unix stream socket:

1. shim -> executor, one request frame sent with SCM_RIGHTS carrying three
   or four descriptors, opened by the shim: its network namespace
   (``/proc/self/ns/net``), its ``/`` and its ``/sys`` (O_PATH), and, when
   CNI_NETNS names a file the shim can open, that file (O_PATH)::

       "PCX1" | u8 len(type) | u32 len(env) | u32 len(stdin) | type | env | stdin

   ``env`` is ``KEY=VALUE\\0`` repeated (the shim's whole environment);
   integers are big-endian. Limits: type 1-64 bytes, env 1 MiB, stdin 16 MiB.
2. executor -> shim, one byte: ``R`` (ready: it will run the call once told
   to), or a decline ``D | u16 len | reason`` after which the shim runs the
   plugin in-process. Malformed requests, peers that are not root, callers
   whose files differ from the executor's (see ``daemon``) and a full
   executor are declined (or just closed).
3. shim -> executor: ``G`` (go). From here on the call belongs to the
   executor; before it, either side may walk away and nothing has run.
4. executor -> shim, the outcome: ``O | u8 exit code | u32 len(stdout) |
   u32 len(stderr) | stdout | stderr``, exactly what the plugin process
   would have printed and how it would have exited.

This module imports nothing: the shim loads it on every plugin call.
"""

# $PYCNI_EXECUTOR_SOCKET overrides it for shim and daemon. Spelled out, not built from
# pycni.rundir.DEFAULT_RUN_DIR: this module imports nothing (tests/unit/test_rundir.py keeps them equal).
DEFAULT_SOCKET = "/run/pycni/executor.sock"
MAGIC = b"PCX1"
HEADER_SIZE = 13  # magic, u8, u32, u32
MAX_TYPE = 64
MAX_ENV = 1 << 20
MAX_STDIN = 16 << 20
MAX_REASON = 4096
OUTCOME_HEADER_SIZE = 10  # "O", u8, u32, u32

READY = b"R"
GO = b"G"
DECLINE = b"D"
OUTCOME = b"O"


class ProtocolError(ValueError):
    """Bytes that are not a well-formed frame."""


class Request:
    """A decoded request: which plugin type, the caller's environment and stdin."""

    __slots__ = ("environ", "plugin_type", "stdin")

    def __init__(self, plugin_type: str, environ: dict[str, str], stdin: bytes) -> None:
        self.plugin_type = plugin_type
        self.environ = environ
        self.stdin = stdin

    def __repr__(self) -> str:
        return f"Request({self.plugin_type!r}, {len(self.environ)} env vars, {len(self.stdin)} bytes of stdin)"


def encode_env(environ: dict[bytes, bytes]) -> bytes:
    """``KEY=VALUE\\0`` for each variable; names with ``=`` or NUL, and values with NUL, are left out."""
    return b"".join(
        key + b"=" + value + b"\0"
        for key, value in environ.items()
        if key and b"=" not in key and b"\0" not in key and b"\0" not in value
    )


def encode_request(plugin_type: bytes, env: bytes, stdin: bytes) -> bytes:
    """The request frame; ``env`` as made by ``encode_env``. Raises ProtocolError beyond the limits."""
    if not 0 < len(plugin_type) <= MAX_TYPE:
        raise ProtocolError(f"plugin type must be 1-{MAX_TYPE} bytes")
    if len(env) > MAX_ENV:
        raise ProtocolError("environment too large")
    if len(stdin) > MAX_STDIN:
        raise ProtocolError("stdin too large")
    return b"".join(
        (
            MAGIC,
            len(plugin_type).to_bytes(1, "big"),
            len(env).to_bytes(4, "big"),
            len(stdin).to_bytes(4, "big"),
            plugin_type,
            env,
            stdin,
        )
    )


def body_size(header: bytes) -> int:
    """How many bytes follow a request header; ProtocolError if the header is bad."""
    if len(header) != HEADER_SIZE:
        raise ProtocolError("short header")
    if header[:4] != MAGIC:
        raise ProtocolError("bad magic (not a pycni executor request)")
    type_len = header[4]
    env_len = int.from_bytes(header[5:9], "big")
    stdin_len = int.from_bytes(header[9:13], "big")
    if not 0 < type_len <= MAX_TYPE:
        raise ProtocolError(f"plugin type length {type_len} out of range")
    if env_len > MAX_ENV:
        raise ProtocolError(f"environment of {env_len} bytes exceeds {MAX_ENV}")
    if stdin_len > MAX_STDIN:
        raise ProtocolError(f"stdin of {stdin_len} bytes exceeds {MAX_STDIN}")
    return type_len + env_len + stdin_len


def decode_request(header: bytes, body: bytes) -> Request:
    """The request in ``header`` + ``body``; ProtocolError when malformed."""
    if len(body) != body_size(header):
        raise ProtocolError("body length does not match the header")
    type_len = header[4]
    env_len = int.from_bytes(header[5:9], "big")
    raw_type = body[:type_len]
    if not all(0x21 <= c < 0x7F and c != 0x2F for c in raw_type):  # printable, no "/" or spaces
        raise ProtocolError("plugin type must be printable ASCII without '/'")
    environ = decode_env(body[type_len : type_len + env_len])
    return Request(raw_type.decode("ascii"), environ, body[type_len + env_len :])


def decode_env(data: bytes) -> dict[str, str]:
    """The environment block as os.environ would decode it (UTF-8, surrogateescape)."""
    if not data:
        return {}
    if not data.endswith(b"\0"):
        raise ProtocolError("environment block is not NUL-terminated")
    environ: dict[str, str] = {}
    for item in data[:-1].split(b"\0"):
        key, sep, value = item.partition(b"=")
        if not sep or not key:
            raise ProtocolError("environment entry without 'NAME='")
        environ[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
    return environ


def encode_decline(reason: str) -> bytes:
    raw = reason.encode("utf-8", "replace")[:MAX_REASON]
    return DECLINE + len(raw).to_bytes(2, "big") + raw


def encode_outcome(exit_code: int, stdout: bytes, stderr: bytes) -> bytes:
    if not 0 <= exit_code <= 255:
        raise ProtocolError(f"exit code {exit_code} out of range")
    sizes = exit_code.to_bytes(1, "big") + len(stdout).to_bytes(4, "big") + len(stderr).to_bytes(4, "big")
    return OUTCOME + sizes + stdout + stderr


def outcome_sizes(header: bytes) -> tuple[int, int, int]:
    """(exit code, stdout length, stderr length) from an outcome header."""
    if len(header) != OUTCOME_HEADER_SIZE or header[:1] != OUTCOME:
        raise ProtocolError("bad outcome header")
    return header[1], int.from_bytes(header[2:6], "big"), int.from_bytes(header[6:10], "big")
