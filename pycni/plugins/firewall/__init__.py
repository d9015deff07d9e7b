"""firewall: allow a pod's addresses through the host's forwarding filter (chained plugin).

Kept light: the handlers import their modules when called, so VERSION
and a bare invocation cost nothing beyond pycni.skel. Like the reference,
it speaks spec 0.4.0 and later only (older configs get code 1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pycni.skel import Plugin

if TYPE_CHECKING:
    from pycni.skel import CmdArgs
    from pycni.spec.result import Result

__all__ = ["PLUGIN"]

VERSIONS = ("0.4.0", "1.0.0", "1.1.0")


def _add(args: CmdArgs) -> Result:
    from pycni.plugins.firewall.plugin import cmd_add

    return cmd_add(args)


def _del(args: CmdArgs) -> None:
    from pycni.plugins.firewall.plugin import cmd_del

    cmd_del(args)


def _check(args: CmdArgs) -> None:
    from pycni.plugins.firewall.plugin import cmd_check

    cmd_check(args)


def _gc(args: CmdArgs) -> None:
    from pycni.plugins.firewall.plugin import cmd_gc

    cmd_gc(args)


PLUGIN = Plugin(
    name="firewall",
    add=_add,
    delete=_del,
    check=_check,
    gc=_gc,
    versions=VERSIONS,
    about="pycni firewall: lets a pod's addresses through the host's forwarding filter (iptables or nftables)",
)
