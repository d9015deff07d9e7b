"""Finding and executing plugin binaries: the runtime's one seam to the outside.

Contract:

- ``find_in_path(type, paths)`` resolves a plugin type to a file the way
  libcni does (spec 5.2): the first ``<dir>/<type>`` that is a regular file
  (symlinks followed, exec bit not checked).
- ``PluginExec`` is the seam libcni calls through: ``find`` and
  ``exec_plugin``. ``RawExec`` runs real binaries; ``pycni.testing.FakeExec``
  scripts plugins in memory.
- ``exec_plugin`` gets only the ``CNI_*`` variables in ``env``; ``RawExec``
  lays them over the runtime's own environment (spec 5.3). A plugin that
  delegates builds ``RawExec(complete_env=True)`` and passes its *whole*
  environment instead: the delegate then sees exactly what its caller saw
  (PATH, CNI_PATH, anything else), never this process's own, which matters
  when the caller is the executor serving some runtime. It returns the
  plugin's stdout on exit 0 and raises a CniError otherwise:

  * the plugin's error JSON, rebuilt as its typed class with its own code;
  * ``ExecFailed`` (999) when the plugin exited non-zero without a usable
    diagnostic, or could not be started;
  * ``PluginTimeout`` (11, try again later) when it outlived ``timeout``.
    We chose 11 because what makes plugins hang is usually transient (a
    lock held by another ADD, a slow DHCP server); the runtime must still
    DEL the attachment afterwards, as after any failed ADD.

Plugins run in their own process group so that a timeout or a cancelled
call (KeyboardInterrupt) kills the plugin *and* whatever it spawned.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Protocol, TextIO

from pycni.spec.errors import CniError, InvalidConfig, InvalidEnvironment, TryAgainLater

__all__ = [
    "ExecFailed",
    "PluginExec",
    "PluginNotFound",
    "PluginTimeout",
    "RawExec",
    "find_in_path",
]

#: libcni retries "text file busy" (a binary still being written) this often, 1 s apart.
TEXT_BUSY_ATTEMPTS = 6
TEXT_BUSY_DELAY = 1.0


class PluginNotFound(CniError):
    """No plugin binary of that type on the search path.

    Code 999: none of the spec's codes fits "not installed" (the config
    itself may be fine).
    """

    code = 999

    def __init__(self, plugin_type: str, paths: Sequence[str]) -> None:
        super().__init__(f'failed to find plugin "{plugin_type}" in path [{" ".join(paths)}]')
        self.plugin_type = plugin_type
        self.paths = tuple(paths)


class PluginTimeout(TryAgainLater):
    """The plugin did not finish in time and was killed (code 11)."""

    def __init__(self, plugin: str, timeout: float) -> None:
        super().__init__(f'plugin "{plugin}" timed out after {timeout:g}s')
        self.plugin = plugin
        self.timeout = timeout


class ExecFailed(CniError):
    """The plugin could not be run, or failed without a diagnostic we could read (code 999)."""

    code = 999

    def __init__(self, msg: str, *, exit_status: int | None = None, stderr: bytes = b"") -> None:
        super().__init__(msg)
        self.exit_status = exit_status
        self.stderr = stderr


def find_in_path(plugin_type: str, paths: Sequence[str]) -> str:
    """The path of the plugin binary for ``plugin_type`` (spec 5.2).

    Empty entries in ``paths`` are skipped: ``CNI_PATH=/opt/cni/bin:``
    must not make the current directory a plugin directory.
    """
    if not plugin_type:
        raise InvalidConfig("no plugin name provided")
    if os.sep in plugin_type or (os.altsep and os.altsep in plugin_type) or "\\" in plugin_type:
        raise InvalidConfig("invalid plugin name", plugin_type)
    if not paths:
        raise InvalidEnvironment("no paths provided")
    for directory in paths:
        if not directory:
            continue
        candidate = os.path.join(directory, plugin_type)
        if os.path.isfile(candidate):
            return candidate
    raise PluginNotFound(plugin_type, paths)


class PluginExec(Protocol):
    """How the runtime runs plugins. Implementations: RawExec, pycni.testing.FakeExec."""

    def find(self, plugin_type: str, paths: Sequence[str]) -> str:
        """Resolve a plugin type to something ``exec_plugin`` accepts; raise CniError if absent."""
        ...

    def exec_plugin(self, path: str, stdin: bytes, env: Mapping[str, str], timeout: float | None) -> bytes:
        """Run the plugin; return stdout on success, raise CniError on failure.

        ``env`` holds the CNI_* variables only.
        """
        ...


class RawExec:
    """Runs plugin binaries as child processes.

    ``new_process_group`` (default True) starts each plugin as the leader of
    its own process group so a timeout kills everything it spawned; with
    False only the plugin process itself is killed. ``complete_env`` (default
    False) says ``env`` is the plugin's whole environment rather than CNI_*
    variables to lay over ``os.environ``.
    """

    def __init__(
        self,
        *,
        stderr: TextIO | None = None,
        busy_attempts: int = TEXT_BUSY_ATTEMPTS,
        busy_delay: float = TEXT_BUSY_DELAY,
        new_process_group: bool = True,
        complete_env: bool = False,
    ) -> None:
        # None means "sys.stderr at call time", so test capture and
        # redirections made after construction still see plugin logs.
        self._stderr = stderr
        self._busy_attempts = busy_attempts
        self._busy_delay = busy_delay
        # A plugin delegating to IPAM passes False: the delegate then stays in
        # the plugin's group, so the runtime's group kill reaches it too.
        self._new_group = new_process_group
        self._complete_env = complete_env

    def find(self, plugin_type: str, paths: Sequence[str]) -> str:
        return find_in_path(plugin_type, paths)

    def exec_plugin(self, path: str, stdin: bytes, env: Mapping[str, str], timeout: float | None) -> bytes:
        # CNI_* given by the caller win over inherited ones; a complete env inherits nothing.
        full_env = dict(env) if self._complete_env else {**os.environ, **env}
        proc = self._start(path, full_env)
        try:
            stdout, stderr = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill(proc)
            raise PluginTimeout(os.path.basename(path), timeout or 0.0) from None
        except BaseException:
            # Cancelled (e.g. KeyboardInterrupt): leave no plugin running behind us.
            self._kill(proc)
            raise
        if proc.returncode == 0:
            self._forward(stderr)
            return stdout
        raise self._failure(proc.returncode, stdout, stderr)

    def _start(self, path: str, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        attempts = max(1, self._busy_attempts)
        for attempt in range(1, attempts + 1):
            try:
                return subprocess.Popen(
                    [path],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=dict(env),
                    process_group=0 if self._new_group else None,
                    close_fds=True,
                )
            except OSError as exc:
                # ETXTBSY: the binary is still open for writing (being
                # installed). A fresh Popen per attempt (cni#1183).
                if exc.errno == errno.ETXTBSY and attempt < attempts:
                    time.sleep(self._busy_delay)
                    continue
                raise ExecFailed(f"failed to execute plugin {path}: {exc.strerror or exc}") from exc
        raise AssertionError("unreachable")  # the loop returns or raises

    def _forward(self, stderr: bytes) -> None:
        if stderr:
            out = self._stderr or sys.stderr
            out.write(stderr.decode("utf-8", errors="replace"))
            out.flush()

    def _failure(self, returncode: int, stdout: bytes, stderr: bytes) -> CniError:
        status = _describe_exit(returncode)
        if not stdout.strip():
            if stderr.strip():
                text = stderr.decode("utf-8", errors="replace")
                return ExecFailed(f"netplugin failed: {_quote(text)}: {status}", exit_status=returncode, stderr=stderr)
            return ExecFailed(f"netplugin failed with no error message: {status}", exit_status=returncode)
        try:
            error = CniError.from_wire(json.loads(stdout))
        except (UnicodeDecodeError, ValueError) as exc:
            text = stdout.decode("utf-8", errors="replace")
            return ExecFailed(
                f"netplugin failed but error parsing its diagnostic message {_quote(text)}: {exc}",
                exit_status=returncode,
                stderr=stderr,
            )
        # The message carries the diagnosis; stderr is extra context worth keeping visible.
        self._forward(stderr)
        return error

    def _kill(self, proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError):  # already gone
            if self._new_group:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        _reap(proc)


def _reap(proc: subprocess.Popen[bytes]) -> None:
    try:
        proc.communicate(timeout=2)
    except subprocess.TimeoutExpired:
        # A descendant left the group (setsid) and still holds our pipes:
        # stop reading rather than hang the runtime.
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"signal: {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal: {-returncode}"
    return f"exit status {returncode}"


def _quote(text: str) -> str:
    # Go's %q: one line, escapes visible.
    return json.dumps(text, ensure_ascii=False)
