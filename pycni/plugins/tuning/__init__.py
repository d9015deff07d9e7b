"""tuning: sysctls and link attributes of the pod's interface (chained plugin).

Kept light: the handlers import their modules when called, so VERSION
and a bare invocation cost nothing beyond pycni.skel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pycni.skel import Plugin

if TYPE_CHECKING:
    from pycni.skel import CmdArgs
    from pycni.spec.result import Result

__all__ = ["PLUGIN"]


def _add(args: CmdArgs) -> Result:
    from pycni.plugins.tuning.plugin import cmd_add

    return cmd_add(args)


def _del(args: CmdArgs) -> None:
    from pycni.plugins.tuning.plugin import cmd_del

    cmd_del(args)


def _check(args: CmdArgs) -> None:
    from pycni.plugins.tuning.plugin import cmd_check

    cmd_check(args)


def _gc(args: CmdArgs) -> None:
    from pycni.plugins.tuning.plugin import cmd_gc

    cmd_gc(args)


PLUGIN = Plugin(
    name="tuning",
    add=_add,
    delete=_del,
    check=_check,
    gc=_gc,
    about="pycni tuning: sysctls, MAC, MTU, promisc, allmulti and txQLen of a pod's interface",
)
