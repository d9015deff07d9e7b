"""The plugin side of the protocol: environment + stdin in, stdout + exit code out.

Contract: ``dispatch`` is the whole protocol as a function. It takes a
``Plugin`` (the handlers), the environment and stdin, and returns an
``Outcome`` (exit code, stdout, stderr); it never touches the process's own
environment or streams, so tests call it in-process and the executor reuses
it. ``main`` is the thin wrapper a plugin's entry point calls for real I/O.

Checks run in this order (the Go skel's, with every version gate applied
*before* a handler runs):

1. CNI_COMMAND unset: the about text on stderr (exit 0), or code 4 without
   one; an unknown command is code 4.
2. Every variable the command requires is set; all missing ones are named
   at once (code 4).
3. VERSION answers here; its stdin only picks the ``cniVersion`` echoed.
4. stdin is a JSON object (code 6) with a valid ``name`` (code 7); container
   ID and ifname are valid where the command requires them (code 4).
5. The command exists in the config's ``cniVersion`` and the plugin
   supports that version (code 1).
6. ADD, CHECK, DEL: CNI_NETNS is not the plugin's own network namespace
   (code 8) unless CNI_NETNS_OVERRIDE is 1 or true.
7. The handler runs. A ``CniError`` keeps its code; anything else is 999.

Any failure prints the spec's error object on stdout and exits 1, like Go.
ADD prints the result rendered in the config's version. Import cost is
kept low on purpose: ``pycni.spec.result`` is imported only when a
prevResult is parsed or an ADD result printed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from functools import cached_property

from pycni.spec import wirejson
from pycni.spec.errors import (
    CniError,
    DecodingFailure,
    IncompatibleVersion,
    InternalError,
    InvalidConfig,
    InvalidEnvironment,
    InvalidNetns,
    IOFailure,
)
from pycni.spec.readers import describe_json
from pycni.spec.record import field, record
from pycni.spec.validate import validate_container_id, validate_interface_name, validate_network_name
from pycni.spec.version import CURRENT_VERSION, SUPPORTED_VERSIONS, check_supported, command_allowed
from pycni.spec.version_info import plugin_info

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~4 ms, with re and enum, of a cold plugin call)
if TYPE_CHECKING:
    from typing import Any, NoReturn

    from pycni.spec.args import CniArgs
    from pycni.spec.result import Result

__all__ = ["CmdArgs", "Outcome", "Plugin", "dispatch", "main"]

#: The order variables are named in a "missing" error, and which ones each
#: command needs. Go's skel, plus GC and STATUS needing only CNI_PATH.
_ENV_ORDER = ("CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH")
_REQUIRED_ENV: dict[str, frozenset[str]] = {
    "ADD": frozenset({"CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"}),
    "CHECK": frozenset({"CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"}),
    "DEL": frozenset({"CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"}),
    "STATUS": frozenset({"CNI_PATH"}),
    "GC": frozenset({"CNI_PATH"}),
    "VERSION": frozenset(),
}
#: Commands about one attachment: they carry a container ID, ifname and netns.
_ATTACHMENT_COMMANDS = frozenset({"ADD", "CHECK", "DEL"})
_GC_KEYS = ("cni.dev/valid-attachments", "cni.dev/attachments")
_OWN_NETNS = "/proc/self/ns/net"


@record
class CmdArgs:
    """One invocation as a handler sees it: the CNI_* variables and the config."""

    command: str
    container_id: str = ""
    netns: str = ""
    ifname: str = ""
    args: str = ""  # raw CNI_ARGS; parse with cni_args()
    path: tuple[str, ...] = ()  # CNI_PATH split on ":"
    stdin_data: bytes = b""
    config: dict[str, Any] = field(default_factory=dict)  # parsed stdin; {} for VERSION
    environ: Mapping[str, str] = field(default_factory=dict)  # the whole environment (delegation reuses it)

    @property
    def cni_version(self) -> str:
        version = self.config.get("cniVersion")
        return version if isinstance(version, str) else ""

    @property
    def network_name(self) -> str:
        name = self.config.get("name")
        return name if isinstance(name, str) else ""

    @property
    def runtime_config(self) -> dict[str, Any]:
        """``runtimeConfig`` (the capability arguments), ``{}`` when absent."""
        value = self.config.get("runtimeConfig")
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise InvalidConfig(f"runtimeConfig: expected an object, got {describe_json(value)}")
        return value

    def prev_result(self) -> Result | None:
        """``prevResult`` parsed and converted to the current version, or None.

        A prevResult without ``cniVersion`` is read in the config's version
        (what libcni and Go's ParsePrevResult do); one that names another
        version is read in that version. Bad input raises DecodingFailure
        (or IncompatibleVersion) whose message starts with ``prevResult``.
        """
        return self._prev_result

    @cached_property
    def _prev_result(self) -> Result | None:
        raw = self.config.get("prevResult")
        if raw is None:
            return None
        from pycni.spec.result import Result

        try:
            parsed = Result.from_wire(raw, default_version=self.cni_version)
        except (DecodingFailure, IncompatibleVersion) as exc:
            raise type(exc)(_under("prevResult", exc.msg), exc.details) from exc
        return parsed.with_version(CURRENT_VERSION)

    def cni_args(self) -> CniArgs:
        """CNI_ARGS as ordered pairs; InvalidEnvironment on a malformed pair."""
        from pycni.spec.args import CniArgs, parse_cni_args

        return CniArgs(parse_cni_args(self.args))

    def valid_attachments(self) -> tuple[tuple[str, str], ...]:
        """GC's still-valid ``(containerID, ifname)`` pairs.

        Read from ``cni.dev/valid-attachments``, else the pre-1.1.0-final
        ``cni.dev/attachments`` (libcni sends both). Absent means none.
        """
        key = next((k for k in _GC_KEYS if self.config.get(k) is not None), None)
        if key is None:
            return ()
        raw = self.config[key]
        if not isinstance(raw, list):
            raise InvalidConfig(f"{key}: expected a list of attachments, got {describe_json(raw)}")
        pairs: list[tuple[str, str]] = []
        for index, item in enumerate(raw):
            where = f"{key}[{index}]"
            if not isinstance(item, dict):
                raise InvalidConfig(f"{where}: expected an object, got {describe_json(item)}")
            container_id, ifname = item.get("containerID"), item.get("ifname")
            if not isinstance(container_id, str):
                raise InvalidConfig(f"{where}.containerID: expected a string, got {describe_json(container_id)}")
            if not isinstance(ifname, str):
                raise InvalidConfig(f"{where}.ifname: expected a string, got {describe_json(ifname)}")
            pairs.append((container_id, ifname))
        return tuple(pairs)


@record
class Plugin:
    """A plugin type's handlers and what it tells VERSION and a bare invocation."""

    name: str  # the plugin type, e.g. "bridge"
    add: Callable[[CmdArgs], Result]
    delete: Callable[[CmdArgs], None]
    check: Callable[[CmdArgs], None]
    status: Callable[[CmdArgs], None] | None = None  # None: STATUS succeeds
    gc: Callable[[CmdArgs], None] | None = None  # None: GC succeeds
    versions: tuple[str, ...] = SUPPORTED_VERSIONS
    about: str = ""  # printed on stderr when run without CNI_COMMAND


@record
class Outcome:
    """What the plugin process prints and how it exits."""

    exit_code: int
    stdout: bytes
    stderr: bytes = b""


def dispatch(
    plugin: Plugin,
    environ: Mapping[str, str],
    stdin: bytes | Callable[[], bytes],
    *,
    is_own_netns: Callable[[str], bool] | None = None,
    debug: bool = False,
) -> Outcome:
    """Run one invocation of ``plugin``. Performs no I/O of its own.

    ``stdin`` is the request bytes, or a reader called only once the
    environment is known to be complete (so a bare run from a terminal
    prints the about text instead of waiting for input); an OSError from it
    is code 5. ``is_own_netns(path)`` says whether a CNI_NETNS path is the
    caller's own network namespace; None skips that check. Tracebacks of
    unexpected exceptions go to stderr when ``debug`` or PYCNI_DEBUG=1.
    """
    env = dict(environ)
    debug = debug or env.get("PYCNI_DEBUG") == "1"
    command = env.get("CNI_COMMAND", "")
    if not command and plugin.about:
        return Outcome(0, b"", _about(plugin).encode())
    cni_version = ""
    try:
        _check_environment(command, env)
        if command == "VERSION":
            return Outcome(0, _version_answer(plugin, stdin))
        args = _load_args(command, env, _read(stdin))
        cni_version = args.cni_version
        if command in _ATTACHMENT_COMMANDS:
            validate_container_id(args.container_id)
            validate_interface_name(args.ifname)
        _check_version(command, cni_version, plugin.versions)
        if command in _ATTACHMENT_COMMANDS and args.netns and is_own_netns is not None:
            _check_not_own_netns(args.netns, env, is_own_netns)
        return Outcome(0, _call(plugin, args))
    except CniError as err:
        return Outcome(1, _dumps(err.to_wire(cni_version)))
    except Exception as exc:
        stderr = _traceback() if debug else b""
        return Outcome(1, _dumps(InternalError(str(exc) or type(exc).__name__).to_wire(cni_version)), stderr)


def main(plugin: Plugin) -> NoReturn:
    """A plugin's entry point: real environment and streams, then exit.

    While the handler runs, file descriptor 1 points at stderr, so a stray
    print() or a child process's output cannot corrupt the JSON the runtime
    reads; the outcome is written to the real stdout afterwards.
    """
    real_stdout = _divert_stdout()
    try:
        outcome = dispatch(plugin, os.environ, _stdin_reader, is_own_netns=_same_netns)
    finally:
        _restore_stdout(real_stdout)
    if outcome.stderr:
        sys.stderr.flush()
        sys.stderr.buffer.write(outcome.stderr)
        sys.stderr.flush()
    sys.stdout.buffer.write(outcome.stdout)
    sys.stdout.flush()
    sys.exit(outcome.exit_code)


# -- the steps of dispatch -------------------------------------------------


def _about(plugin: Plugin) -> str:
    return f"{plugin.about}\nCNI protocol versions supported: {', '.join(plugin.versions)}\n"


def _check_environment(command: str, env: Mapping[str, str]) -> None:
    if command and command not in _REQUIRED_ENV:
        raise InvalidEnvironment(f"unknown CNI_COMMAND: {command}")
    required = _REQUIRED_ENV.get(command, frozenset()) | {"CNI_COMMAND"}
    missing = [name for name in _ENV_ORDER if name in required and not env.get(name)]
    if missing:
        raise InvalidEnvironment(f"required env variables [{','.join(missing)}] missing")


def _version_answer(plugin: Plugin, stdin: bytes | Callable[[], bytes]) -> bytes:
    """``spec.version_info.plugin_info``; unreadable stdin is no request (the current version)."""
    try:
        request = _read(stdin)
    except CniError:
        request = b""
    return plugin_info(plugin.versions, request)


def _read(stdin: bytes | Callable[[], bytes]) -> bytes:
    if not callable(stdin):
        return bytes(stdin)
    try:
        return stdin()
    except OSError as exc:
        raise IOFailure(f"error reading from stdin: {exc}") from exc


def _load_args(command: str, env: dict[str, str], data: bytes) -> CmdArgs:
    return CmdArgs(
        command=command,
        container_id=env.get("CNI_CONTAINERID", ""),
        netns=env.get("CNI_NETNS", ""),
        ifname=env.get("CNI_IFNAME", ""),
        args=env.get("CNI_ARGS", ""),
        path=tuple(p for p in env.get("CNI_PATH", "").split(":") if p),
        stdin_data=data,
        config=_parse_config(data),
        environ=env,
    )


def _parse_config(data: bytes) -> dict[str, Any]:
    """The request config: a JSON object with a valid name (codes 6 and 7).

    JSON null for ``name`` or ``cniVersion`` reads as absent, as in Go.
    """
    if not data.strip():
        raise DecodingFailure("error unmarshall network config: empty input")
    try:
        config = wirejson.loads(data, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise DecodingFailure(f"error unmarshall network config: {exc}") from exc
    if not isinstance(config, dict):
        raise DecodingFailure(f"error unmarshall network config: expected an object, got {describe_json(config)}")
    for key in ("name", "cniVersion"):
        value = config.get(key)
        if value is not None and not isinstance(value, str):
            raise DecodingFailure(
                f"error unmarshall network config: {key!r} must be a string, got {describe_json(value)}"
            )
    validate_network_name(config.get("name") or "")
    return config


def _reject_constant(name: str) -> Any:
    # Python accepts NaN and Infinity; JSON (and Go) do not.
    raise ValueError(f"invalid JSON value {name}")


def _check_version(command: str, version: str, supported: tuple[str, ...]) -> None:
    try:
        allowed = command_allowed(command, version)
    except DecodingFailure:
        allowed = True  # an unparsable version is reported by the membership check
    if not allowed:
        raise IncompatibleVersion(f"config version does not allow {command}")
    check_supported(version, supported)


def _check_not_own_netns(netns: str, env: Mapping[str, str], is_own_netns: Callable[[str], bool]) -> None:
    if env.get("CNI_NETNS_OVERRIDE", "").lower() in ("1", "true"):
        return
    if is_own_netns(netns):
        raise InvalidNetns(f'netns "{netns}" is the plugin\'s own network namespace')


def _call(plugin: Plugin, args: CmdArgs) -> bytes:
    if args.command == "ADD":
        from pycni.spec.result import Result, dumps

        result = plugin.add(args)
        if not isinstance(result, Result):
            raise TypeError(f"{plugin.name}: ADD handler returned {type(result).__name__}, not a Result")
        return dumps(result.to_wire(args.cni_version))
    handlers = {"DEL": plugin.delete, "CHECK": plugin.check, "STATUS": plugin.status, "GC": plugin.gc}
    handler = handlers[args.command]
    if handler is not None:
        handler(args)
    return b""


# -- helpers ---------------------------------------------------------------


def _dumps(obj: dict[str, Any]) -> bytes:
    """Error objects, encoded exactly as pycni.spec.result.dumps (not imported: it pulls in ipaddress)."""
    return wirejson.dumps_indented(obj).encode("utf-8")


def _under(prefix: str, msg: str) -> str:
    """Re-root a message that starts with a JSON path (``ips[0].address: ...``) under ``prefix``."""
    path, sep, rest = msg.partition(": ")
    if not sep or " " in path:
        return f"{prefix}: {msg}"
    if path == "result":  # result.py's name for the top level
        return f"{prefix}: {rest}"
    return f"{prefix}{'' if path.startswith('[') else '.'}{path}: {rest}"


def _traceback() -> bytes:
    import traceback

    return traceback.format_exc().encode()


def _same_netns(path: str) -> bool:
    """True when ``path`` is the network namespace this process runs in.

    A namespace file is identified by its (device, inode) on nsfs: stat()
    follows a /proc/<pid>/ns/net magic link and a bind-mounted
    /run/netns/<name> to that same inode, so one comparison serves both
    (readlink's "net:[<inode>]" carries the inode alone). A path that does
    not exist or cannot be read is not ours: DEL must work after the
    namespace is gone.
    """
    try:
        target = os.stat(path)
        own = os.stat(_OWN_NETNS)
    except OSError:
        return False
    return (target.st_dev, target.st_ino) == (own.st_dev, own.st_ino)


def _stdin_reader() -> bytes:
    stream = sys.stdin
    if stream is None:
        return b""
    if os.environ.get("CNI_COMMAND") == "VERSION" and stream.isatty():
        return b""  # VERSION's stdin is optional; don't wait on a terminal
    return stream.buffer.read()


def _divert_stdout() -> int | None:
    """Point fd 1 at stderr; return a duplicate of the real stdout (or None)."""
    if sys.stdout is None:
        return None
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError):
        return None
    try:
        os.dup2(2, 1)
    except OSError:
        os.close(saved)
        return None
    return saved


def _restore_stdout(saved: int | None) -> None:
    if saved is None:
        return
    try:
        sys.stdout.flush()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
