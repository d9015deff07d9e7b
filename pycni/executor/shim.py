"""What an installed plugin file runs: forward the call to the executor, else run it here.

Contract (``main(plugin_type)`` never returns):

- The executor socket is ``$PYCNI_EXECUTOR_SOCKET``, else the one the shim
  was installed with (default /run/pycni/executor.sock); empty disables
  forwarding. The shim sends its whole environment, its stdin and
  descriptors of its network namespace, its root, its /sys and CNI_NETNS
  (see ``protocol``), then relays the outcome: stderr, stdout, exit code —
  the bytes the plugin would have printed in-process.
- It runs the plugin in-process when the socket is absent or refuses, when
  the executor declines, and when the connection breaks before the executor
  took the call (before ``G``): nothing has run yet, so nothing runs twice.
- If the executor dies after taking the call, DEL, CHECK, STATUS, GC and
  VERSION are simply run again in-process (they are safe to repeat). ADD is
  not repeated: the shim undoes whatever part of it was done (a DEL with the
  same config, in-process) and fails with code 11, "try again later", so a
  runtime never sees a half-made attachment.
- The fast path imports only builtins (posix, _socket) and ``protocol``;
  the in-process path imports the plugin like ``pycni.plugins.run``.

``pycni install`` normally writes the compiled shim (``cshim.c``), which
does the forwarding above itself and execs Python only to run the plugin
here: ``fallback(plugin_type, executor_died)``, with whatever stdin it
already read put back on fd 0. This module's ``main`` is the installed
shim where no C compiler is found (``pycni install --shim python``).
"""

import _socket
import posix
import sys

from pycni.executor import protocol

DEFAULT_SOCKET = protocol.DEFAULT_SOCKET.encode()
FORWARDED = frozenset((b"ADD", b"DEL", b"CHECK", b"VERSION", b"STATUS", b"GC"))
#: How long to wait for the executor to take the call (covers a socket-activated start).
READY_TIMEOUT = 15.0
_SAFE_TO_REPEAT = frozenset((b"DEL", b"CHECK", b"VERSION", b"STATUS", b"GC"))
_PATH_ONLY = posix.O_PATH | posix.O_CLOEXEC


class _ExecutorDied(Exception):
    """The connection broke after the executor took the call."""


def main(plugin_type: str, executor_socket: bytes = DEFAULT_SOCKET) -> None:
    """Run one call of ``plugin_type``; ``executor_socket`` is the install's socket ($PYCNI_EXECUTOR_SOCKET wins)."""
    environ = posix.environ
    command = environ.get(b"CNI_COMMAND", b"")
    path = environ.get(b"PYCNI_EXECUTOR_SOCKET", executor_socket)
    stdin = None
    if command in FORWARDED and path:
        stdin = _read_stdin(command)
        if stdin is not None:
            try:
                outcome = forward(plugin_type, stdin, environ, path)
            except _ExecutorDied:
                outcome = None if command in _SAFE_TO_REPEAT else _undo_add(plugin_type, stdin)
            if outcome is not None:
                _emit(*outcome)
    _run_in_process(plugin_type, stdin)


def fallback(plugin_type: str, executor_died: bool) -> None:
    """What the C shim execs when the executor did not answer the call (never returns).

    ``executor_died`` False: the executor did not take the call; run it here
    (no second forwarding attempt). True: it took the call and vanished;
    an ADD is undone and fails with code 11, anything else runs again here.
    """
    if executor_died and posix.environ.get(b"CNI_COMMAND") == b"ADD":
        stdin = _read_stdin(b"ADD")
        _emit(*_undo_add(plugin_type, stdin if stdin is not None else b""))
    _run_in_process(plugin_type, None)


def forward(
    plugin_type: str, stdin: bytes, environ: dict[bytes, bytes], path: bytes
) -> tuple[int, bytes, bytes] | None:
    """The executor's outcome for this call, or None when it did not take the call.

    Raises _ExecutorDied when the executor took the call and then vanished.
    """
    try:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    except OSError:
        return None
    try:
        if not _hand_over(sock, path, plugin_type, stdin, environ):
            return None  # nothing ran: absent, refused, declined or broken before "go"
        try:
            sock.settimeout(None)  # the executor enforces the call's timeout
            code, out_len, err_len = protocol.outcome_sizes(_recv_exact(sock, protocol.OUTCOME_HEADER_SIZE))
            body = _recv_exact(sock, out_len + err_len)
        except (OSError, protocol.ProtocolError) as exc:
            raise _ExecutorDied(str(exc)) from None
    finally:
        sock.close()
    return code, body[:out_len], body[out_len:]


def _hand_over(sock: _socket.socket, path: bytes, plugin_type: str, stdin: bytes, environ: dict[bytes, bytes]) -> bool:
    """Send the request; True once the executor is ready and has been told to go."""
    fds: list[int] = []
    try:
        frame = protocol.encode_request(plugin_type.encode(), protocol.encode_env(environ), stdin)
        fds.append(posix.open("/proc/self/ns/net", posix.O_RDONLY | posix.O_CLOEXEC))
        fds.append(posix.open("/", _PATH_ONLY))
        fds.append(posix.open("/sys", _PATH_ONLY))
        netns = environ.get(b"CNI_NETNS")
        if netns:
            try:  # noqa: SIM105  # contextlib is not worth its import here
                fds.append(posix.open(netns, _PATH_ONLY))
            except OSError:
                pass  # absent here (DEL after the netns went): the executor must not see it either
        sock.settimeout(READY_TIMEOUT)
        sock.connect(path)
        rights = b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds)
        sent = sock.sendmsg([frame], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])
        if sent < len(frame):
            sock.sendall(frame[sent:])
        answer = _recv_exact(sock, 1)
        if answer != protocol.READY:
            _report_decline(sock, answer)
            return False
        sock.sendall(protocol.GO)
        return True
    except (OSError, protocol.ProtocolError):
        return False
    finally:
        for fd in fds:
            posix.close(fd)


def _recv_exact(sock: _socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    while size > 0:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            raise OSError("connection closed by the executor")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _report_decline(sock: _socket.socket, answer: bytes) -> None:
    if posix.environ.get(b"PYCNI_DEBUG") != b"1":
        return
    reason = "connection closed"
    if answer == protocol.DECLINE:
        try:  # noqa: SIM105  # contextlib is not worth its import here
            reason = _recv_exact(sock, int.from_bytes(_recv_exact(sock, 2), "big")).decode(errors="replace")
        except OSError:
            pass
    _write(2, f"pycni: executor did not take the call ({reason}); running it in-process\n".encode())


def _read_stdin(command: bytes) -> bytes | None:
    """All of stdin, or None to let the in-process path read it (a terminal, an unreadable fd)."""
    try:
        if command == b"VERSION" and posix.isatty(0):
            return None
        chunks: list[bytes] = []
        while True:
            chunk = posix.read(0, 1 << 16)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    except OSError:
        return None


def _undo_add(plugin_type: str, stdin: bytes) -> tuple[int, bytes, bytes]:
    """Roll back a forwarded ADD the executor died in, and fail it with code 11."""
    import os

    from pycni import skel
    from pycni.executor.outcome import failed
    from pycni.plugins import load_plugin
    from pycni.spec.errors import TryAgainLater

    msg = "pycni executor exited while running ADD; its partial changes were undone; try again"
    try:
        # skel.main's own-netns check: never DEL the caller's own interfaces
        undo = skel.dispatch(load_plugin(plugin_type), {**os.environ, "CNI_COMMAND": "DEL"}, stdin,
                             is_own_netns=skel._same_netns)
    except Exception as exc:
        undo = skel.Outcome(1, str(exc).encode())
    if undo.exit_code != 0:
        msg = f"pycni executor exited while running ADD; undoing it failed too: {undo.stdout.decode(errors='replace')}"
    outcome = failed(plugin_type, os.environ, stdin, TryAgainLater(msg))
    return outcome.exit_code, outcome.stdout, undo.stderr + outcome.stderr


def _run_in_process(plugin_type: str, stdin: bytes | None) -> None:
    if len(sys.argv) <= 1:
        # One CNI call, then exit (arguments would be a plugin's own command
        # line, e.g. the dhcp daemon, which lives on): the cyclic collector's
        # passes over the ~80 modules this imports cost ~3 ms of a cold call,
        # and would free next to nothing before the process ends.
        import gc

        gc.disable()
    if stdin is not None:  # already consumed: hand the same bytes to skel
        import io

        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
    from pycni.plugins import run

    try:
        run(plugin_type)
    except SystemExit as exc:
        _exit_now(exc)
        raise
    _exit_now(SystemExit(0))


def _exit_now(exc: SystemExit) -> None:
    """Exit as ``raise exc`` would, without the interpreter's teardown, when nothing is left for it to do.

    Tearing down the modules of a plugin call costs ~5 ms of a cold call's
    50 ms budget. Returns (the caller raises ``exc``: the normal exit) when
    an atexit handler is registered, another thread still runs (the normal
    exit may wait for it), the code is not None or an int, or flushing
    stdout or stderr fails (the normal exit reports that). Otherwise the
    output is flushed and the process exits with ``SystemExit``'s status.
    """
    import atexit

    threading = sys.modules.get("threading")
    code = exc.code
    if atexit._ncallbacks() or (threading is not None and threading.active_count() > 1):
        return
    if code is not None and not isinstance(code, int):
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:  # what the interpreter's teardown would report: leave it to that
            return
    posix._exit(0 if code is None else code & 0xFF)


def _emit(code: int, stdout: bytes, stderr: bytes) -> None:
    if stderr:
        _write(2, stderr)
    _write(1, stdout)
    posix._exit(code)


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[posix.write(fd, view) :]
        except InterruptedError:
            continue
        except OSError:
            return
