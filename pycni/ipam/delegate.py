"""Delegating to an IPAM plugin (spec "Delegated plugins").

The delegate is found on CNI_PATH and run with the same environment and
the complete stdin the calling plugin got; only CNI_COMMAND changes. Its
error comes back as the typed CniError with the delegate's own code.
Main plugins call ``ipam_add`` and, if anything later fails, ``ipam_del``
before re-raising, so a failed ADD never leaves an address reserved.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pycni.skel import CmdArgs
    from pycni.spec.result import Result


def ipam_type(args: CmdArgs) -> str:
    """The ``ipam.type`` of the config, or "" when the network has no IPAM."""
    ipam = args.config.get("ipam")
    if isinstance(ipam, dict) and isinstance(ipam.get("type"), str):
        return str(ipam["type"])
    return ""


def delegate(plugin_type: str, command: str, args: CmdArgs) -> bytes:
    """Run ``plugin_type`` with ``command``; return its stdout."""
    from pycni.runtime.invoke import RawExec, find_in_path

    path = find_in_path(plugin_type, args.path)
    env = {**args.environ, "CNI_COMMAND": command}
    return RawExec(new_process_group=False).exec_plugin(path, args.stdin_data, env, timeout=None)


def ipam_add(args: CmdArgs) -> Result:
    """ADD on the IPAM delegate; its result converted to the current version."""
    import json

    from pycni.spec.errors import DecodingFailure
    from pycni.spec.result import Result

    plugin_type = ipam_type(args)
    out = delegate(plugin_type, "ADD", args)
    try:
        data = json.loads(out)
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
