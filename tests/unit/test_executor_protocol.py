"""The executor's wire format: frames round-trip, and every malformed input is a ProtocolError."""

from __future__ import annotations

import pytest

from pycni.executor import protocol
from pycni.executor.protocol import ProtocolError


def split(frame: bytes) -> tuple[bytes, bytes]:
    return frame[: protocol.HEADER_SIZE], frame[protocol.HEADER_SIZE :]


def test_request_round_trip() -> None:
    odd = "é\udcff".encode("utf-8", "surrogateescape")
    env = {b"CNI_COMMAND": b"ADD", b"CNI_ARGS": b"A=1;B=2", b"EMPTY": b"", b"NAME": odd}
    frame = protocol.encode_request(b"host-local", protocol.encode_env(env), b'{"cniVersion":"1.0.0"}')
    header, body = split(frame)
    assert protocol.body_size(header) == len(body)

    request = protocol.decode_request(header, body)

    assert request.plugin_type == "host-local"
    assert request.stdin == b'{"cniVersion":"1.0.0"}'
    assert request.environ == {"CNI_COMMAND": "ADD", "CNI_ARGS": "A=1;B=2", "EMPTY": "", "NAME": "é\udcff"}
    assert "host-local" in repr(request)


def test_values_may_contain_equals_and_empty_stdin_is_kept() -> None:
    frame = protocol.encode_request(b"bridge", protocol.encode_env({b"CAP_ARGS": b"{\"a\":\"b=c\"}"}), b"")
    request = protocol.decode_request(*split(frame))
    assert request.environ == {"CAP_ARGS": '{"a":"b=c"}'}
    assert request.stdin == b""


def test_encode_env_leaves_out_what_cannot_be_framed() -> None:
    env = {b"": b"x", b"A=B": b"x", b"NUL\0": b"x", b"V": b"has\0nul", b"OK": b"1"}
    assert protocol.encode_env(env) == b"OK=1\0"


@pytest.mark.parametrize(
    ("plugin_type", "env", "stdin"),
    [
        (b"", b"", b""),
        (b"x" * (protocol.MAX_TYPE + 1), b"", b""),
        (b"bridge", b"x" * (protocol.MAX_ENV + 1), b""),
        (b"bridge", b"", b"x" * (protocol.MAX_STDIN + 1)),
    ],
)
def test_encode_request_enforces_limits(plugin_type: bytes, env: bytes, stdin: bytes) -> None:
    with pytest.raises(ProtocolError):
        protocol.encode_request(plugin_type, env, stdin)


def header(magic: bytes = protocol.MAGIC, type_len: int = 6, env_len: int = 0, stdin_len: int = 0) -> bytes:
    return magic + bytes([type_len]) + env_len.to_bytes(4, "big") + stdin_len.to_bytes(4, "big")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (header()[:-1], "short header"),
        (header(magic=b"GET "), "bad magic"),
        (header(type_len=0), "plugin type length"),
        (header(type_len=protocol.MAX_TYPE + 1), "plugin type length"),
        (header(env_len=protocol.MAX_ENV + 1), "environment"),
        (header(stdin_len=protocol.MAX_STDIN + 1), "stdin"),
    ],
)
def test_bad_headers(raw: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        protocol.body_size(raw)


def test_an_http_request_is_not_a_request() -> None:
    with pytest.raises(ProtocolError, match="magic"):
        protocol.body_size(b"GET / HTTP/1.1"[: protocol.HEADER_SIZE])


@pytest.mark.parametrize(
    ("plugin_type", "env", "message"),
    [
        (b"../etc", b"", "printable"),
        (b"a b", b"", "printable"),
        (b"br\x00", b"", "printable"),
        (b"bridge", b"NOEQUALS\0", "NAME="),
        (b"bridge", b"=value\0", "NAME="),
        (b"bridge", b"A=1", "NUL-terminated"),
    ],
)
def test_bad_bodies(plugin_type: bytes, env: bytes, message: str) -> None:
    raw = header(type_len=len(plugin_type), env_len=len(env))
    with pytest.raises(ProtocolError, match=message):
        protocol.decode_request(raw, plugin_type + env)


def test_body_length_must_match_header() -> None:
    raw = header(type_len=6, stdin_len=10)
    with pytest.raises(ProtocolError, match="length"):
        protocol.decode_request(raw, b"bridge" + b"short")


def test_outcome_round_trip() -> None:
    frame = protocol.encode_outcome(1, b'{"code": 7}', b"trace")
    code, out_len, err_len = protocol.outcome_sizes(frame[: protocol.OUTCOME_HEADER_SIZE])
    body = frame[protocol.OUTCOME_HEADER_SIZE :]
    assert (code, body[:out_len], body[out_len : out_len + err_len]) == (1, b'{"code": 7}', b"trace")


@pytest.mark.parametrize("raw", [b"", b"X" + bytes(9), protocol.OUTCOME + bytes(8)])
def test_bad_outcome_headers(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        protocol.outcome_sizes(raw)


@pytest.mark.parametrize("code", [-1, 256])
def test_exit_codes_fit_a_byte(code: int) -> None:
    with pytest.raises(ProtocolError):
        protocol.encode_outcome(code, b"", b"")


def test_decline_is_bounded() -> None:
    frame = protocol.encode_decline("x" * 10_000)
    assert frame[:1] == protocol.DECLINE
    assert int.from_bytes(frame[1:3], "big") == protocol.MAX_REASON == len(frame) - 3


def test_protocol_and_shim_fast_path_import_nothing_heavy() -> None:
    """The shim's forwarding path must not load the plugin machinery (it runs on every call)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    code = (
        f"import sys; sys.path[:0] = [{str(root)!r}]; import pycni.executor.shim; "
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('pycni') or m in "
        "('json', 'typing', 'dataclasses', 'socket', 'os', 'enum'))))"
    )
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["pycni", "pycni.executor", "pycni.executor.protocol", "pycni.executor.shim"]
