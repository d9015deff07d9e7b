"""Starting the executor: its socket (bound, or passed by systemd), preloading, signals, serving.

Contract: ``run(options, log)`` serves from the calling (main) thread until
SIGTERM or SIGINT, then lets running calls finish, removes the socket file
it bound (never one systemd passed) and returns 0. SIGHUP reopens the log.
With ``options.processes`` > 1 the calls are served by that many worker
processes forked after preloading (``workers``); this process supervises.
``bind_listener`` refuses a socket another executor listens on and
replaces a stale one; ``preload`` imports every plugin and opens a netlink
handle so the first call is as fast as the next.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import socket
from collections.abc import Callable

from pycni.executor.daemon import Executor, Options
from pycni.executor.logs import JsonLog
from pycni.executor.metrics import Metrics
from pycni.plugins import PLUGIN_MODULES, import_plugin

__all__ = ["bind_listener", "preload", "run", "systemd_listener"]

#: systemd passes its sockets from fd 3 on (sd_listen_fds).
SD_LISTEN_FDS_START = 3




def systemd_listener(environ: dict[str, str] | None = None) -> socket.socket | None:
    """The socket systemd passed (socket activation), else None. Clears the LISTEN_* variables."""
    env = os.environ if environ is None else environ
    try:
        ours = int(env.get("LISTEN_PID", "0")) == os.getpid() and int(env.get("LISTEN_FDS", "0")) >= 1
    except ValueError:
        ours = False
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        env.pop(name, None)  # plugins' children must not think they were activated
    if not ours:
        return None
    sock = socket.socket(fileno=SD_LISTEN_FDS_START)
    os.set_inheritable(sock.fileno(), False)
    return sock


def bind_listener(path: str) -> socket.socket:
    """Listen on ``path`` (mode 0600); a stale socket file is replaced, a live one is an error."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o755, exist_ok=True)
    if os.path.exists(path):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.settimeout(1.0)
            probe.connect(path)
        except OSError:
            os.unlink(path)  # nobody listens: left behind by an executor that died
        else:
            raise RuntimeError(f"another executor is listening on {path}")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # never reachable by others, not even briefly
    try:
        sock.bind(path)
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    sock.listen(128)
    return sock


def preload(log: JsonLog) -> None:
    """Import every plugin and open one netlink handle, so the first call is as fast as the rest."""
    import importlib

    loaded, missing = [], []
    for plugin_type in sorted(PLUGIN_MODULES):
        try:
            import_plugin(plugin_type)
            loaded.append(plugin_type)
        except ModuleNotFoundError as exc:
            if exc.name != PLUGIN_MODULES[plugin_type]:
                log("preload_failed", "error", plugin=plugin_type, error=str(exc))
            missing.append(plugin_type)
        except Exception as exc:
            log("preload_failed", "error", plugin=plugin_type, error=repr(exc))
            missing.append(plugin_type)
    for module in ("pycni.spec.result", "pycni.spec.config", "pycni.runtime.invoke", "nftables"):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    try:
        from pycni import net

        net.preload()
    except Exception as exc:
        log("preload_failed", "error", plugin="", error=f"netlink: {exc!r}")
    log("preloaded", plugins=loaded, unavailable=missing)


def run(options: Options, log: JsonLog, *, metrics_addr: str | None = None, do_preload: bool = True,
        listener: socket.socket | None = None, on_ready: Callable[[], None] | None = None) -> int:
    """Serve until SIGTERM/SIGINT (call from the main thread). Returns the exit status."""
    activated = listener is not None
    if listener is None:
        listener = systemd_listener()
        activated = listener is not None
    if listener is None:
        listener = bind_listener(options.socket_path)
    metrics = Metrics()
    own_sockets: list[socket.socket] = []  # the workers close these
    if metrics_addr:
        from pycni.executor.metrics import serve_metrics

        server = serve_metrics(metrics_addr, metrics)
        own_sockets.append(server.socket)
        host, port = server.server_address[:2]
        log("metrics_listening", addr=f"{host!s}:{port}")
    if do_preload:
        preload(log)
    # What start-up made lives as long as the daemon: the collector never walks it again (a full
    # collection of it costs ~25 ms), and forked workers do not dirty its pages by collecting it.
    gc.freeze()
    socket_name = listener.getsockname()

    def serving() -> None:
        log("listening", socket=socket_name, pid=os.getpid(), socket_activated=activated,
            max_workers=options.max_workers, request_timeout=options.request_timeout, processes=options.processes)
        if on_ready is not None:
            on_ready()

    try:
        if options.processes > 1:
            from pycni.executor.workers import serve_in_processes

            serve_in_processes(listener, options, log, metrics if metrics_addr else None, serving, own_sockets)
        else:
            executor = Executor(listener, options, log, metrics)
            signal.signal(signal.SIGTERM, lambda *_: executor.shutdown())
            signal.signal(signal.SIGINT, lambda *_: executor.shutdown())
            signal.signal(signal.SIGHUP, lambda *_: log.reopen())
            serving()
            executor.serve_forever()
    finally:
        if not activated and isinstance(socket_name, str) and socket_name:
            with contextlib.suppress(OSError):
                os.unlink(socket_name)
        listener.close()
        log("stopped", pid=os.getpid())
    return 0
