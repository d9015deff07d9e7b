"""tuning: sysctls and link attributes of the pod's interface (chained plugin).

Kept light: the handlers import their modules when called, so VERSION
and a bare invocation cost nothing beyond pycni.skel.
"""

from __future__ import annotations

from pycni.plugins.lazy import lazy
from pycni.skel import Plugin

_MODULE = "pycni.plugins.tuning.plugin"

PLUGIN = Plugin(
    name="tuning",
    add=lazy(_MODULE, "cmd_add"),
    delete=lazy(_MODULE, "cmd_del"),
    check=lazy(_MODULE, "cmd_check"),
    gc=lazy(_MODULE, "cmd_gc"),
    about="pycni tuning: sysctls, MAC, MTU, promisc, allmulti and txQLen of a pod's interface",
)

__all__ = ["PLUGIN"]
