"""Outcomes the executor (or the shim) makes up itself, rendered as the plugin would render them."""

from __future__ import annotations

import json
from collections.abc import Mapping

from pycni import skel
from pycni.spec.errors import CniError


def failed(plugin_type: str, environ: Mapping[str, str], stdin: bytes, error: CniError) -> skel.Outcome:
    """The outcome of a call that failed with ``error``: skel's error JSON in the config's version, exit 1.

    Rendered by skel itself (a stand-in plugin whose handlers raise ``error``),
    so the bytes match what a failing plugin prints for the same request.
    """

    def fail(args: skel.CmdArgs) -> None:
        raise error

    stand_in = skel.Plugin(name=plugin_type, add=fail, delete=fail, check=fail, status=fail, gc=fail)  # type: ignore[arg-type]
    outcome = skel.dispatch(stand_in, environ, stdin)
    if outcome.exit_code == 0:  # VERSION never reaches a handler
        return skel.Outcome(1, json.dumps(error.to_wire(), indent=4).encode())
    return outcome


def error_code(outcome: skel.Outcome) -> int | None:
    """The CNI error code a failed outcome carries, None for success or unreadable output."""
    if outcome.exit_code == 0:
        return None
    try:
        code = json.loads(outcome.stdout).get("code")
    except (ValueError, AttributeError):
        return None
    return code if isinstance(code, int) else None
