"""VERSION's answer without imports: the bytes a json reading gives, and a cold path that stays cold."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pycni.spec.version_info import CURRENT_VERSION, SUPPORTED_VERSIONS, plugin_info, requested_version

ROOT = Path(__file__).resolve().parents[2]

REQUESTS = [
    b"", b"   ", b"\n", b"{}", b" { } ", b"{\t\r\n}", b"null", b"[]", b"1", b'"1.0.0"', b"{", b"}", b"{]",
    b'{"cniVersion":"1.1.0"}', b'{"cniVersion":"0.4.0"}', b' {\n "cniVersion" : "0.3.1" \n} \n',
    b'{"cniVersion":"9.9.9"}', b'{"cniVersion":""}', b'{"cniVersion":"1.0"}', b'{"cniVersion":1.0}',
    b'{"cniVersion":null}', b'{"cniVersion":["1.0.0"]}', b'{"cniVersion":"1.0.0","name":"x"}',
    b'{"name":"x","cniVersion":"0.2.0"}', b'{"cniVersion":"1.0.0","cniVersion":"0.4.0"}',
    b'{"cni\\u0056ersion":"1.0.0"}', b'{"cniVersion":"1.0\\u002e0"}',
    b'{"cniVersion":"1.0.0"', b'"cniVersion":"1.0.0"}',
    b'{"cniVersion":"1.0.0"}}', b'{{"cniVersion":"1.0.0"}', b'\xef\xbb\xbf{"cniVersion":"0.4.0"}',
    b'\x0b{"cniVersion":"0.4.0"}', b'{"cniVersion":"1.0.0"}\x0c', b'{"cniVersion" "1.0.0"}', b'{"cniVersion":"."}',
    b'{"a":{"cniVersion":"0.4.0"}}', b'{"cniVersion":"0.4.0",}', "{\"cniVersion\":\"0.4.0\"}".encode("utf-16"),
]


def reference_answer(versions: tuple[str, ...], request: bytes) -> bytes:
    """What skel answered before version_info: the request read with json."""
    try:
        parsed = json.loads(request or b"null")
    except (ValueError, RecursionError):
        parsed = None
    version = CURRENT_VERSION
    if isinstance(parsed, dict) and parsed.get("cniVersion") in versions:
        version = parsed["cniVersion"]
    answer = {"cniVersion": version, "supportedVersions": list(versions)}
    return json.dumps(answer, separators=(",", ":")).encode() + b"\n"


@pytest.mark.parametrize("request_bytes", REQUESTS)
@pytest.mark.parametrize("versions", [SUPPORTED_VERSIONS, SUPPORTED_VERSIONS[4:], SUPPORTED_VERSIONS[2:]])
def test_answer_is_the_json_readers(request_bytes: bytes, versions: tuple[str, ...]) -> None:
    assert plugin_info(versions, request_bytes) == reference_answer(versions, request_bytes)


def test_libcni_request_read_without_json() -> None:
    assert requested_version(b'{"cniVersion":"1.1.0"}') == "1.1.0"
    assert requested_version(b"{}") is None
    assert requested_version(b"") is None


def test_version_in_process_imports_neither_skel_nor_dataclasses_nor_json() -> None:
    """The cold path of VERSION (what the compiled shim execs) stays free of the heavy imports."""
    code = (
        "import sys;sys.path[:0]=[sys.argv.pop()]\n"
        "from pycni.plugins import run\n"
        "try:\n    run('bridge')\nexcept SystemExit:\n"
        "    heavy=[m for m in ('pycni.skel','dataclasses','typing','json','re','os') if m in sys.modules]\n"
        "    sys.stderr.write(repr(heavy))\n"
    )
    env = {"CNI_COMMAND": "VERSION", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    done = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(ROOT)], input=b'{"cniVersion":"0.4.0"}',
                          env=env, capture_output=True, check=True)
    assert done.stdout == reference_answer(SUPPORTED_VERSIONS, b'{"cniVersion":"0.4.0"}')
    assert done.stderr == b"[]"
