"""The compiled shim: building and patching it, reading it back, installing it, and its protocol side.

No root needed: a fake executor (a thread on a unix socket in tmp_path)
plays the daemon's part, so the C shim and the Python shim can be held to
the same bytes — the request they send, what they print, how they exit.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pycni import shimfile
from pycni.cli.install import cmd_install, cmd_uninstall
from pycni.executor import cshim, protocol
from pycni.executor.install import render_cshim, render_shim
from pycni.shimfile import import_roots, is_pycni_shim, shim_plugin_type

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(cshim.build_shim_binary() is None, reason=f"no C shim: {cshim.build_error()}")


def install(bin_dir: Path, *plugin_types: str, **extra: object) -> int:
    return cmd_install(argparse.Namespace(bin_dir=str(bin_dir), plugins=list(plugin_types), force=False, **extra), {})


def write_shim(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    path.chmod(0o755)
    return path


@pytest.fixture
def shims(tmp_path: Path) -> Callable[..., dict[str, Path]]:
    """``shims(plugin_type, socket=None)``: the C and the Python shim of one plugin, side by side."""

    def make(plugin_type: str = "bridge", socket: str | None = None) -> dict[str, Path]:
        return {
            "c": write_shim(tmp_path / f"c-{plugin_type}", render_cshim(plugin_type, executor_socket=socket)),
            "python": write_shim(tmp_path / f"py-{plugin_type}", render_shim(plugin_type, executor_socket=socket)),
        }

    return make


def run(shim: Path, env: dict[str, str], stdin: bytes | int = b"",
        timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    if isinstance(stdin, int):  # a descriptor (a terminal)
        return subprocess.run([str(shim)], stdin=stdin, env=env, capture_output=True, timeout=timeout, check=False)
    return subprocess.run([str(shim)], input=stdin, env=env, capture_output=True, timeout=timeout, check=False)


def base_env(command: str | None, socket: str | None, **extra: str) -> dict[str, str]:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    if command is not None:
        env["CNI_COMMAND"] = command
    if socket is not None:
        env["PYCNI_EXECUTOR_SOCKET"] = socket
    env.update(extra)
    return env


def same(a: subprocess.CompletedProcess[bytes], b: subprocess.CompletedProcess[bytes]) -> None:
    assert (a.returncode, a.stdout, a.stderr) == (b.returncode, b.stdout, b.stderr)


# -- a fake executor -------------------------------------------------------------


@dataclass
class Seen:
    plugin_type: bytes
    env: bytes
    stdin: bytes
    fd_count: int
    said_go: bool = False


@dataclass
class FakeExecutor:
    """Answers each connection with ``answer(seen)`` bytes; after "R" it waits for "G", then sends ``outcome``."""

    path: str
    answer: bytes = protocol.READY
    outcome: bytes | None = None  # None: close after "G" (the executor died)
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0

    def serve(self, server: socket.socket, stop: threading.Event) -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                self.connections += 1
                self.handle(conn)

    def handle(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        header, fds, _, _ = socket.recv_fds(conn, protocol.HEADER_SIZE, 8)
        for fd in fds:
            os.close(fd)
        while len(header) < protocol.HEADER_SIZE:
            header += conn.recv(protocol.HEADER_SIZE - len(header))
        size = protocol.body_size(header)
        body = b""
        while len(body) < size:
            chunk = conn.recv(size - len(body))
            assert chunk
            body += chunk
        type_len, env_len = header[4], int.from_bytes(header[5:9], "big")
        seen = Seen(body[:type_len], body[type_len : type_len + env_len], body[type_len + env_len :], len(fds))
        self.seen.append(seen)
        conn.sendall(self.answer)
        if self.answer == protocol.READY:
            seen.said_go = conn.recv(1) == protocol.GO
            if self.outcome is not None:
                conn.sendall(self.outcome)


@pytest.fixture
def fake_executor(tmp_path: Path) -> Iterator[FakeExecutor]:
    path = str(tmp_path / "fake.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(8)
    fake = FakeExecutor(path)
    stop = threading.Event()
    thread = threading.Thread(target=fake.serve, args=(server, stop), daemon=True)
    thread.start()
    yield fake
    stop.set()
    thread.join(timeout=10)
    server.close()


# -- building and patching --------------------------------------------------------


def test_the_shim_compiles_to_an_elf_with_one_configuration_area() -> None:
    binary = cshim.build_shim_binary()
    assert binary is not None and binary.startswith(b"\x7fELF")
    assert binary.count(shimfile.MARKER) == 1
    offset = binary.find(shimfile.MARKER)
    assert offset < shimfile.SCAN_LIMIT
    assert binary[offset + len(shimfile.MARKER) : offset + shimfile.CONFIG_SIZE] == bytes(
        shimfile.CONFIG_SIZE - len(shimfile.MARKER))


def test_the_build_is_cached_by_source_and_compiler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "cc.log"
    wrapper = write_shim(tmp_path / "my-cc", f'#!/bin/sh\necho "$@" >>{log}\nexec {shutil.which("cc")} "$@"\n')
    monkeypatch.setenv("CC", str(wrapper))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for _ in range(2):
        monkeypatch.setattr(cshim, "_built", None)
        binary = cshim.build_shim_binary()
        assert binary is not None and binary.count(shimfile.MARKER) == 1
    assert len(log.read_text().splitlines()) == 1, "the second build came from the cache"
    assert [p.name for p in (tmp_path / "cache" / "pycni").iterdir() if p.name.startswith("cshim-")]
    assert not [p for p in (tmp_path / "cache" / "pycni").iterdir() if p.name.startswith(".")]


def test_no_compiler_means_no_binary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(cshim, "_built", None)
    monkeypatch.setenv("CC", "/nonexistent/cc")
    assert cshim.build_shim_binary() is None
    assert "no C compiler" in cshim.build_error()
    failing = write_shim(tmp_path / "bad-cc", "#!/bin/sh\necho 'cc: broken' >&2\nexit 1\n")
    monkeypatch.setenv("CC", str(failing))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert cshim.build_shim_binary() is None
    assert "cc: broken" in cshim.build_error()


def test_configuration_round_trips() -> None:
    binary = cshim.build_shim_binary()
    assert binary is not None
    roots = ["/opt/pycni", "/opt/site packages/ü"]
    patched = shimfile.patch_config(binary, "host-local", "/usr/bin/python3", roots, "/run/x.sock")
    assert len(patched) == len(binary)
    offset = binary.find(shimfile.MARKER)
    assert patched[:offset] == binary[:offset] and patched[offset + shimfile.CONFIG_SIZE :] == binary[
        offset + shimfile.CONFIG_SIZE :]
    expected = {"type": ["host-local"], "socket": ["/run/x.sock"], "python": ["/usr/bin/python3"], "root": roots}
    assert shimfile.read_cshim_config(patched) == expected
    default = shimfile.patch_config(binary, "ptp", "/usr/bin/python3", [])
    assert shimfile.read_cshim_config(default) == {"type": ["ptp"], "socket": [protocol.DEFAULT_SOCKET],
                                                "python": ["/usr/bin/python3"]}
    # patching a patched binary again is fine (the area is found by its marker)
    assert shimfile.read_cshim_config(shimfile.patch_config(patched, "tap", "/p", []))["type"] == ["tap"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("plugin_type", "python", "roots", "message"),
    [
        ("bridge", "/usr/bin/python3", ["/x" * 2100], "does not fit"),
        ("bridge", "/usr/bin/python3", ["/a\nroot=/evil"], "newline"),
        ("", "/usr/bin/python3", [], "plugin type"),
        ("b" * 65, "/usr/bin/python3", [], "plugin type"),
        ("bridge", "python3", [], "absolute"),
        ("bridge", "/usr/bin/python3", ["/r"] * 65, "import roots"),
    ],
)
def test_configuration_that_cannot_be_written_is_refused(plugin_type: str, python: str, roots: list[str],
                                                          message: str) -> None:
    binary = cshim.build_shim_binary()
    assert binary is not None
    with pytest.raises(ValueError, match=message):
        shimfile.patch_config(binary, plugin_type, python, roots)


def test_reading_config_of_other_files(tmp_path: Path) -> None:
    script = write_shim(tmp_path / "script", render_shim("bridge"))
    go = tmp_path / "go"
    go.write_bytes(b"\x7fELF" + bytes(100_000))
    assert shimfile.read_cshim_config(str(script)) is None
    assert shimfile.read_cshim_config(str(go)) is None
    assert shimfile.read_cshim_config(str(tmp_path / "missing")) is None
    assert shimfile.read_cshim_config(b"not an elf " + shimfile.MARKER) is None
    unconfigured = cshim.build_shim_binary()
    assert unconfigured is not None and shimfile.read_cshim_config(unconfigured) == {}


# -- install, uninstall, reading back ----------------------------------------------


def test_install_writes_the_c_shim_by_default_and_scripts_on_request(tmp_path: Path) -> None:
    assert install(tmp_path / "auto", "bridge", "host-local") == 0
    assert install(tmp_path / "c", "bridge", shim="c") == 0
    assert install(tmp_path / "py", "bridge", shim="python") == 0
    for path in (tmp_path / "auto" / "bridge", tmp_path / "auto" / "host-local", tmp_path / "c" / "bridge"):
        assert path.read_bytes().startswith(b"\x7fELF") and os.access(path, os.X_OK)
        assert is_pycni_shim(str(path))
    config = shimfile.read_cshim_config(str(tmp_path / "auto" / "host-local"))
    assert config == {"type": ["host-local"], "socket": [protocol.DEFAULT_SOCKET], "python": [sys.executable],
                      "root": import_roots()}
    script = (tmp_path / "py" / "bridge").read_text()
    assert script.startswith(f"#!{sys.executable} -IS\n") and is_pycni_shim(str(tmp_path / "py" / "bridge"))
    assert not [p for p in (tmp_path / "auto").iterdir() if p.name.startswith(".")]


def test_install_carries_the_executor_socket_into_the_c_shim(tmp_path: Path) -> None:
    install(tmp_path, "bridge", executor_socket="/tmp/private executor.sock")
    assert shimfile.read_cshim_config(str(tmp_path / "bridge"))["socket"] == ["/tmp/private executor.sock"]  # type: ignore[index]
    assert shim_plugin_type(str(tmp_path / "bridge")) == "bridge"


def test_shim_c_fails_clearly_without_a_compiler_and_auto_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cshim, "_built", None)
    monkeypatch.setenv("CC", "/nonexistent/cc")
    with pytest.raises(SystemExit, match="--shim c: cannot build the C shim: no C compiler"):
        install(tmp_path / "c", "bridge", shim="c")
    assert not (tmp_path / "c" / "bridge").exists()
    assert install(tmp_path / "auto", "bridge") == 0
    assert (tmp_path / "auto" / "bridge").read_text().startswith("#!")
    assert "installing Python shims" in capsys.readouterr().err


def test_reinstall_switches_kinds_and_uninstall_removes_both(tmp_path: Path) -> None:
    foreign = write_shim(tmp_path / "vrf", "#!/bin/sh\necho go\n")
    go = tmp_path / "macvlan"
    go.write_bytes(b"\x7fELF" + bytes(5000))
    assert install(tmp_path, "bridge", "ptp", shim="python") == 0
    assert install(tmp_path, "bridge", "tuning") == 0  # replaces our Python shim without --force
    assert install(tmp_path, "macvlan") == 1  # a foreign ELF stays
    assert (tmp_path / "bridge").read_bytes().startswith(b"\x7fELF")
    assert install(tmp_path, "tuning", shim="python") == 0  # and our C shim
    assert cmd_uninstall(argparse.Namespace(bin_dir=str(tmp_path)), {}) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["macvlan", "vrf"]
    assert foreign.read_text() == "#!/bin/sh\necho go\n" and go.read_bytes() == b"\x7fELF" + bytes(5000)


def test_shim_plugin_type_reads_both_kinds_and_rejects_other_installations(tmp_path: Path) -> None:
    install(tmp_path / "c", "static")
    install(tmp_path / "py", "static", shim="python")
    assert shim_plugin_type(str(tmp_path / "c" / "static")) == "static"
    assert shim_plugin_type(str(tmp_path / "py" / "static")) == "static"
    copy = tmp_path / "my-ipam"  # a copy under another name still runs the type written inside it
    copy.write_bytes((tmp_path / "c" / "static").read_bytes())
    assert shim_plugin_type(str(copy)) == "static"
    binary = cshim.build_shim_binary()
    assert binary is not None
    other = write_shim(tmp_path / "other", shimfile.patch_config(binary, "bridge", sys.executable,
                                                              ["/elsewhere/pycni", *import_roots()[1:]]))
    assert is_pycni_shim(str(other)) and shim_plugin_type(str(other)) is None
    unconfigured = write_shim(tmp_path / "unconfigured", binary)
    assert shim_plugin_type(str(unconfigured)) is None


# -- the C shim against a fake executor, next to the Python shim --------------------


def test_both_shims_send_the_same_request(shims: Callable[..., dict[str, Path]], fake_executor: FakeExecutor,
                                          tmp_path: Path) -> None:
    fake_executor.answer = protocol.encode_decline("full")
    paths = shims("bridge", socket=fake_executor.path)
    netns = tmp_path / "netns"
    netns.write_text("")
    # not JSON: whatever runs in-process after the decline stops at parsing it
    stdin = b'{"cniVersion":"1.0.0","name":"n","type":"bridge"}\n' + bytes(range(256))
    envs = [
        base_env("ADD", None, CNI_CONTAINERID="c1", CNI_NETNS=str(netns), CNI_IFNAME="eth0"),  # coerced LC_CTYPE
        base_env("DEL", None, CNI_NETNS="/nonexistent/netns", LANG="C.UTF-8", ODD="\xe9 \\ =x"),
        base_env("CHECK", None, LC_CTYPE="C", LANG="C.UTF-8"),  # LC_CTYPE replaced in place
        base_env("STATUS", None, LC_ALL="C", LC_CTYPE="C"),  # LC_ALL set: no coercion
        base_env("GC", None, LC_CTYPE="no_such_locale"),
    ]
    for env in envs:
        before = len(fake_executor.seen)
        run(paths["c"], env, stdin)
        run(paths["python"], env, stdin)
        c_seen, py_seen = fake_executor.seen[before:]
        assert c_seen == py_seen, env
        assert c_seen.plugin_type == b"bridge" and c_seen.stdin == stdin
        assert c_seen.fd_count == (4 if "CNI_NETNS" in env and os.path.exists(env["CNI_NETNS"]) else 3)
        assert protocol.decode_env(c_seen.env)["CNI_COMMAND"] == env["CNI_COMMAND"]
    assert b"LC_CTYPE=C.UTF-8\0" in fake_executor.seen[0].env


def test_the_outcome_is_relayed_exactly(shims: Callable[..., dict[str, Path]], fake_executor: FakeExecutor) -> None:
    paths = shims("bridge", socket=fake_executor.path)
    stdout = b"".join(b"%07d\n" % i for i in range(400_000))  # 3.2 MB: many partial writes into the pipe
    fake_executor.outcome = protocol.encode_outcome(7, stdout, b"a warning\n")
    env = base_env("ADD", None, CNI_CONTAINERID="c1", CNI_NETNS="/x", CNI_IFNAME="eth0")
    for kind in ("c", "python"):
        out = run(paths[kind], env, b"{}")
        assert (out.returncode, out.stdout, out.stderr) == (7, stdout, b"a warning\n"), kind
        assert fake_executor.seen[-1].said_go
    fake_executor.outcome = protocol.encode_outcome(0, b"", b"")
    out = run(paths["c"], base_env("DEL", None), b"{}")
    assert (out.returncode, out.stdout, out.stderr) == (0, b"", b"")


BAD_UTF8 = b"x \xff\xe2\x82 y \xf0\x9f\x98\x80 \xed\xa0\x80 \xc0\xaf \xf4\x90\x80\x80 \xe2\x82"


@pytest.mark.parametrize(
    ("name", "answer"),
    [
        ("decline", protocol.encode_decline("executor is full")),
        ("decline, bad utf-8", protocol.DECLINE + len(BAD_UTF8).to_bytes(2, "big") + BAD_UTF8),
        ("decline, truncated", protocol.DECLINE + (50).to_bytes(2, "big") + b"short"),
        ("closed", b""),
        ("garbage", b"?"),
    ],
)
def test_a_call_the_executor_does_not_take_runs_in_process(shims: Callable[..., dict[str, Path]],
                                                            fake_executor: FakeExecutor, name: str,
                                                            answer: bytes) -> None:
    fake_executor.answer = answer
    paths = shims("bridge", socket=fake_executor.path)
    for debug in ("1", "0"):
        env = base_env("VERSION", None, PYCNI_DEBUG=debug)
        c, py = run(paths["c"], env, b'{"cniVersion":"0.4.0"}'), run(paths["python"], env, b'{"cniVersion":"0.4.0"}')
        same(c, py)
        assert c.returncode == 0 and json.loads(c.stdout)["cniVersion"] == "0.4.0"
        if debug == "1" and answer:
            assert c.stderr.startswith(b"pycni: executor did not take the call (")
        else:
            assert c.stderr == b""
    assert fake_executor.connections == 4


def test_an_executor_that_dies_after_go(shims: Callable[..., dict[str, Path]], fake_executor: FakeExecutor) -> None:
    """VERSION runs again in-process; an ADD is undone (a DEL, in-process) and fails with code 11."""
    paths = shims("static", socket=fake_executor.path)  # static's DEL touches nothing
    version = [run(paths[kind], base_env("VERSION", None), b'{"cniVersion":"1.0.0"}') for kind in ("c", "python")]
    same(*version)
    assert version[0].returncode == 0 and b"supportedVersions" in version[0].stdout
    env = base_env("ADD", None, CNI_CONTAINERID="c1", CNI_NETNS="/nonexistent", CNI_IFNAME="eth0", CNI_PATH="/x")
    conf = {"cniVersion": "1.0.0", "name": "n", "type": "static",
            "ipam": {"type": "static", "addresses": [{"address": "10.9.9.9/24"}]}}
    add = [run(paths[kind], env, json.dumps(conf).encode()) for kind in ("c", "python")]
    same(*add)
    error = json.loads(add[0].stdout)
    assert add[0].returncode == 1 and error["code"] == 11, error
    assert "executor exited while running ADD; its partial changes were undone" in error["msg"], error
    assert all(s.said_go for s in fake_executor.seen) and len(fake_executor.seen) == 4
    fake_executor.outcome = b"O\x00\x00\x00"  # half an outcome header, then gone
    same(*(run(paths[kind], base_env("VERSION", None), b"{}") for kind in ("c", "python")))


@pytest.mark.parametrize("case", ["no socket", "empty socket", "unknown command", "no command", "huge stdin",
                                  "huge environment", "socket path too long", "terminal"])
def test_calls_that_are_not_forwarded(shims: Callable[..., dict[str, Path]], fake_executor: FakeExecutor,
                                      tmp_path: Path, case: str) -> None:
    paths = shims("bridge", socket=fake_executor.path)
    stdin: bytes | int = b'{"cniVersion":"1.0.0"}'
    env = base_env("VERSION", None)
    if case == "no socket":
        env["PYCNI_EXECUTOR_SOCKET"] = str(tmp_path / "absent.sock")
    elif case == "empty socket":
        env["PYCNI_EXECUTOR_SOCKET"] = ""
    elif case == "unknown command":
        env["CNI_COMMAND"] = "FOO"
    elif case == "no command":
        del env["CNI_COMMAND"]
    elif case == "huge stdin":
        stdin = b'{"cniVersion":"1.0.0"}' + b" " * protocol.MAX_STDIN
    elif case == "huge environment":
        env.update({f"BIG{i}": "x" * 100_000 for i in range(11)})
    elif case == "socket path too long":
        env["PYCNI_EXECUTOR_SOCKET"] = "/tmp/" + "x" * 104
    elif case == "terminal":
        leader, follower = os.openpty()
        stdin = follower
    try:
        c, py = run(paths["c"], env, stdin), run(paths["python"], env, stdin)
    finally:
        if isinstance(stdin, int):
            os.close(leader)
            os.close(follower)
    same(c, py)
    assert fake_executor.connections == 0
    if case not in ("unknown command", "no command"):
        assert c.returncode == 0 and b"supportedVersions" in c.stdout, c.stdout + c.stderr


def test_the_configured_socket_is_used_unless_the_environment_names_one(
    shims: Callable[..., dict[str, Path]], fake_executor: FakeExecutor
) -> None:
    fake_executor.outcome = protocol.encode_outcome(0, b"from the executor", b"")
    paths = shims("bridge", socket=fake_executor.path)
    out = run(paths["c"], base_env("VERSION", None), b"{}")
    assert out.stdout == b"from the executor"
    out = run(paths["c"], base_env("VERSION", "/nonexistent/executor.sock"), b"{}")
    assert b"supportedVersions" in out.stdout


# -- the fallback's hand-over to Python --------------------------------------------

FAKE_PYTHON = """#!{python} -S
import json, os, sys
fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
try:
    seekable = os.lseek(0, 0, os.SEEK_CUR) >= 0
except OSError:
    seekable = False
json.dump({{"argv": sys.argv[1:], "fds": fds, "stdin": sys.stdin.buffer.read().decode("latin-1"),
            "seekable": seekable}}, sys.stdout)
"""


def test_the_fallback_hands_python_the_stdin_and_no_descriptors(tmp_path: Path, fake_executor: FakeExecutor) -> None:
    binary = cshim.build_shim_binary()
    assert binary is not None
    fake = write_shim(tmp_path / "fake-python", FAKE_PYTHON.format(python=sys.executable))
    shim = write_shim(tmp_path / "bridge", shimfile.patch_config(binary, "bridge", str(fake), ["/r1", "/r 2"],
                                                                fake_executor.path))
    env = base_env("ADD", None, CNI_NETNS="/proc/self/ns/net")

    def fallback(stdin: bytes | int) -> tuple[str, str, list[int], bool]:
        """(mode, stdin, open descriptors, stdin seekable) as the Python the shim exec'd saw them."""
        out = run(shim, env, stdin)
        assert out.returncode == 0, out.stdout + out.stderr
        seen = json.loads(out.stdout)
        argv = seen["argv"]
        assert argv[:3] == ["-I", "-S", "-c"] and "fallback(" in argv[3]
        assert argv[4] == "bridge" and argv[6:] == ["/r1", "/r 2"]
        return argv[5], seen["stdin"], seen["fds"], seen["seekable"]

    baseline = json.loads(subprocess.run([str(fake)], input=b"", capture_output=True, check=True).stdout)["fds"]
    data = bytes(range(256)) * 1000
    fake_executor.answer = protocol.encode_decline("no")
    assert fallback(data) == ("run", data.decode("latin-1"), baseline, True)
    fake_executor.answer = protocol.READY
    assert fallback(b"{}") == ("died", "{}", baseline, True)
    env["CNI_COMMAND"] = "FOO"  # not forwarded: stdin is not touched
    with open(tmp_path / "input", "w+b") as f:
        f.write(b"untouched")
        f.seek(3)
        assert fallback(f.fileno())[:2] == ("run", "ouched")


def test_a_shim_that_cannot_start_python_prints_a_cni_error(tmp_path: Path) -> None:
    binary = cshim.build_shim_binary()
    assert binary is not None
    broken = write_shim(tmp_path / "broken", shimfile.patch_config(binary, "bridge", "/nonexistent/python \"3\"", []))
    out = run(broken, base_env("VERSION", ""), b"{}")
    assert out.returncode == 1
    error = json.loads(out.stdout)
    assert error["code"] == 999 and error["cniVersion"] == "1.0.0"
    assert '/nonexistent/python "3"' in error["msg"] and "No such file" in error["msg"]
    unconfigured = write_shim(tmp_path / "unconfigured", binary)
    out = run(unconfigured, base_env("VERSION", ""), b"{}")
    assert out.returncode == 1 and "not configured by 'pycni install'" in json.loads(out.stdout)["msg"]


def test_the_source_compiles_cleanly_with_strict_warnings(tmp_path: Path) -> None:
    cc = shutil.which("cc")
    assert cc is not None
    for std in ("gnu11", "c11"):
        out = subprocess.run([cc, "-O2", "-Wall", "-Wextra", "-Werror", "-Wpedantic" if std == "c11" else "-Wshadow",
                              f"-std={std}", "-o", str(tmp_path / f"shim-{std}"),
                              str(REPO_ROOT / "pycni" / "executor" / "cshim.c")], capture_output=True, text=True,
                             check=False)
        assert out.returncode == 0, out.stderr


def test_a_full_backlog_is_not_waited_for(shims: Callable[..., dict[str, Path]], tmp_path: Path) -> None:
    """Like CPython's connect with a timeout: an executor whose backlog is full gets no wait, the call runs here."""
    path = str(tmp_path / "busy.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(0)  # never accepted
        fillers = []
        try:
            while True:
                filler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                fillers.append(filler)
                filler.setblocking(False)
                filler.connect(path)
        except BlockingIOError:
            pass
        try:
            paths = shims("bridge", socket=path)
            started = time.monotonic()
            c, py = (run(paths[kind], base_env("VERSION", None), b"{}") for kind in ("c", "python"))
            assert time.monotonic() - started < 10
        finally:
            for filler in fillers:
                filler.close()
    same(c, py)
    assert c.returncode == 0 and b"supportedVersions" in c.stdout
