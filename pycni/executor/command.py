"""``pycni executor``: options, foreground or ``--daemon`` (double fork, pid file, ready before returning).

Importing this module is cheap (the ``pycni`` parser imports it); the
daemon itself is imported when the command runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping

from pycni.executor.protocol import DEFAULT_SOCKET
from pycni.rundir import DEFAULT_RUN_DIR

DEFAULT_PID_FILE = os.path.join(DEFAULT_RUN_DIR, "executor.pid")
DEFAULT_DAEMON_LOG = "/var/log/pycni/executor.log"

Serve = Callable[[Callable[[], None] | None], int]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--socket", help=f"unix socket to listen on (default $PYCNI_EXECUTOR_SOCKET or {DEFAULT_SOCKET}; "
                   "ignored under systemd socket activation)")
    p.add_argument("--daemon", action="store_true", help="detach; return once the socket accepts calls")
    p.add_argument("--pid-file", help=f"write the daemon's pid here (default with --daemon: {DEFAULT_PID_FILE})")
    p.add_argument("--log-file", help="append JSON-lines logs here (default: stderr; with --daemon: "
                   f"{DEFAULT_DAEMON_LOG})")
    p.add_argument("--metrics", metavar="ADDR", help="serve Prometheus metrics on HOST:PORT at /metrics")
    p.add_argument("--timeout", type=float, help="seconds a plugin call may run before it fails with code 11 "
                   "(default 60)")
    p.add_argument("--max-workers", type=int, help="plugin calls run at once (default 32, shared by the processes)")
    p.add_argument("--processes", type=int, help="worker processes accepting calls (default: one per core the "
                   "executor may run on; 1 serves from this process alone)")
    p.add_argument("--io-timeout", type=float, help="seconds a client has to send its request (default 5)")
    p.add_argument("--no-preload", action="store_true", help="import plugins on first use, not at start")


def cmd_executor(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from pycni.executor.daemon import Options
    from pycni.executor.logs import JsonLog
    from pycni.executor.startup import run
    from pycni.executor.workers import default_processes

    limits = {"request_timeout": args.timeout, "max_workers": args.max_workers, "io_timeout": args.io_timeout,
              "processes": args.processes}
    if any(value is not None and value <= 0 for value in limits.values()):
        raise SystemExit("pycni executor: --timeout, --io-timeout, --max-workers and --processes must be positive")
    limits["processes"] = args.processes or default_processes()
    options = Options(
        socket_path=args.socket or environ.get("PYCNI_EXECUTOR_SOCKET") or DEFAULT_SOCKET,
        **{name: value for name, value in limits.items() if value is not None},
    )
    log_file = args.log_file or (DEFAULT_DAEMON_LOG if args.daemon else None)
    pid_file = args.pid_file or (DEFAULT_PID_FILE if args.daemon else None)

    def serve(on_ready: Callable[[], None] | None = None) -> int:
        log = JsonLog(log_file)
        if pid_file:
            _write_pid_file(pid_file)
        try:
            return run(options, log, metrics_addr=args.metrics, do_preload=not args.no_preload, on_ready=on_ready)
        finally:
            if pid_file:
                _remove_pid_file(pid_file)
            log.close()

    if not args.daemon:
        return serve(None)
    return _daemonize(serve)


def _daemonize(serve: Serve) -> int:
    """Double fork; the parent returns 0 once the daemon listens, 1 (with its error) if it could not start."""
    read_fd, write_fd = os.pipe()
    if os.fork() > 0:
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as ready:
            message = ready.read()
        if message == b"ready":
            return 0
        print(f"pycni executor: {message.decode(errors='replace') or 'failed to start'}", file=sys.stderr)
        return 1
    # first child: a new session, then fork again so the daemon is no session leader
    os.close(read_fd)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)

    def on_ready() -> None:
        os.write(write_fd, b"ready")
        os.close(write_fd)

    status = 1
    try:
        status = serve(on_ready)
    except BaseException as exc:
        try:
            os.write(write_fd, (str(exc) or type(exc).__name__).encode())
            os.close(write_fd)
        except OSError:
            pass  # already reported ready: the log has the story
    os._exit(status)


def _write_pid_file(path: str) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        f.write(f"{os.getpid()}\n")


def _remove_pid_file(path: str) -> None:
    try:
        with open(path) as f:
            if f.read().strip() != str(os.getpid()):
                return  # another executor took over the file
        os.unlink(path)
    except OSError:
        pass
