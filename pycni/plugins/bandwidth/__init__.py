"""bandwidth (chained): shape a veth attachment's traffic with token bucket filters.

Spec 6.17. ``conf`` reads the rates and bursts (config and the
``bandwidth`` capability), ``plugin`` has the commands; pycni.net.tc does
the kernel work. Spec versions 0.3.0 and later, as the reference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pycni.skel import Plugin
from pycni.spec.version import SUPPORTED_VERSIONS

if TYPE_CHECKING:
    from pycni.skel import CmdArgs
    from pycni.spec.result import Result

# The handlers import their module on first call: VERSION (and a bare run)
# only pays for skel.


def _add(args: CmdArgs) -> Result:
    from pycni.plugins.bandwidth.plugin import cmd_add

    return cmd_add(args)


def _del(args: CmdArgs) -> None:
    from pycni.plugins.bandwidth.plugin import cmd_del

    cmd_del(args)


def _check(args: CmdArgs) -> None:
    from pycni.plugins.bandwidth.plugin import cmd_check

    cmd_check(args)


def _gc(args: CmdArgs) -> None:
    from pycni.plugins.bandwidth.plugin import cmd_gc

    cmd_gc(args)


PLUGIN = Plugin(
    name="bandwidth",
    add=_add,
    delete=_del,
    check=_check,
    gc=_gc,
    versions=SUPPORTED_VERSIONS[SUPPORTED_VERSIONS.index("0.3.0") :],
    about="pycni bandwidth: ingress/egress rate limits with tbf qdiscs (and an ifb for egress)",
)

__all__ = ["PLUGIN"]
