"""Delegating to an IPAM plugin (spec "Delegated plugins").

The delegate is found on CNI_PATH and run with the same environment and
the complete stdin the calling plugin got; only CNI_COMMAND changes. "The
same environment" is ``CmdArgs.environ``, the caller's whole environment,
and nothing else: in the executor that is the runtime's (PATH, CNI_PATH,
...) as the shim sent it, not the daemon's own, so an exec'd delegate (a
Go IPAM binary, any foreign plugin) sees what a runtime exec would give it. Its
error comes back as the typed CniError with the delegate's own code.
Main plugins call ``ipam_add`` and, if anything later fails, ``ipam_del``
before re-raising, so a failed ADD never leaves an address reserved.

When the file found on CNI_PATH is a shim of this pycni (``pycni install``),
the delegate runs in-process through ``skel.dispatch`` — in the calling
thread, so in the executor it stays in the caller's namespace — and its
outcome is read exactly as an exec's would be (stdout on success, the
error JSON rebuilt as a CniError otherwise). Anything else is exec'd per
the spec. Neither path imports more than it uses: finding the file does
not load ``pycni.runtime`` (~70 ms cold) unless the lookup fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~4 ms, with re and enum, of a cold plugin call)
if TYPE_CHECKING:
    from pycni.skel import CmdArgs
    from pycni.spec.result import Result


def ipam_type(args: CmdArgs) -> str:
    """The ``ipam.type`` of the config, or "" when the network has no IPAM (read as every plugin reads it)."""
    from pycni.spec.config import ipam_type_of

    return ipam_type_of(args.config)


def delegate(plugin_type: str, command: str, args: CmdArgs) -> bytes:
    """Run ``plugin_type`` with ``command``; return its stdout."""
    from pycni.shimfile import shim_plugin_type

    path = _find(plugin_type, args.path)
    env = {**args.environ, "CNI_COMMAND": command}
    shim_type = shim_plugin_type(path)
    if shim_type is not None:
        stdout = _run_in_process(shim_type, env, args.stdin_data)
        if stdout is not None:
            return stdout
    from pycni.runtime.invoke import RawExec

    # complete_env: the caller's environment alone, none of this process's (the executor's) own.
    return RawExec(new_process_group=False, complete_env=True).exec_plugin(path, args.stdin_data, env, timeout=None)


def _find(plugin_type: str, paths: Sequence[str]) -> str:
    """``find_in_path``'s answer; the usual case is resolved here without importing pycni.runtime."""
    if plugin_type and os.sep not in plugin_type and "\\" not in plugin_type:
        for directory in paths:
            candidate = os.path.join(directory, plugin_type)
            if directory and os.path.isfile(candidate):
                return candidate
    from pycni.runtime.invoke import find_in_path

    return find_in_path(plugin_type, paths)  # raises the runtime's error for what was not found above


def _run_in_process(plugin_type: str, env: Mapping[str, str], stdin: bytes) -> bytes | None:
    """The delegate's stdout, run in this thread; its CniError if it failed; None if pycni lacks the type."""
    import sys

    from pycni import skel
    from pycni.registry import import_plugin, load_plugin
    from pycni.spec import wirejson
    from pycni.spec.errors import CniError

    try:
        import_plugin(plugin_type)  # in-process only when its module loads here
        plugin = load_plugin(plugin_type)
    except (LookupError, ImportError):
        return None
    # No own-netns check: the calling plugin made it for this same CNI_NETNS.
    outcome = skel.dispatch(plugin, env, stdin)
    if outcome.stderr:  # what RawExec does with a delegate's stderr
        sys.stderr.write(outcome.stderr.decode("utf-8", errors="replace"))
        sys.stderr.flush()
    if outcome.exit_code == 0:
        return outcome.stdout
    raise CniError.from_wire(wirejson.loads(outcome.stdout))  # skel always prints an error object on failure


def ipam_add(args: CmdArgs) -> Result:
    """ADD on the IPAM delegate; its result converted to the current version."""
    from pycni.spec import wirejson
    from pycni.spec.errors import DecodingFailure
    from pycni.spec.result import Result

    plugin_type = ipam_type(args)
    out = delegate(plugin_type, "ADD", args)
    try:
        data = wirejson.loads(out)
    except ValueError as exc:
        raise DecodingFailure(f"IPAM plugin {plugin_type!r} returned invalid JSON: {exc}") from exc
    return Result.from_wire(data, default_version=args.cni_version)


def ipam_del(args: CmdArgs) -> None:
    delegate(ipam_type(args), "DEL", args)


def ipam_check(args: CmdArgs) -> None:
    delegate(ipam_type(args), "CHECK", args)


def ipam_status(args: CmdArgs) -> None:
    delegate(ipam_type(args), "STATUS", args)


def ipam_gc(args: CmdArgs) -> None:
    delegate(ipam_type(args), "GC", args)


@contextmanager
def released_on_failure(args: CmdArgs) -> Iterator[None]:
    """Undo the IPAM ADD if the body fails, then re-raise the body's error.

    A failed ADD must not leave an address reserved; a failure of the
    release itself is reported on stderr, never instead of the real error.
    """
    try:
        yield
    except BaseException:
        try:
            ipam_del(args)
        except Exception as exc:  # keep the original error; the release is best effort
            import sys

            print(f"pycni: failed to release IPAM after a failed ADD: {exc}", file=sys.stderr)
        raise
