"""firewall: allow a pod's addresses through the host's forwarding filter (chained plugin).

Kept light: the handlers import their modules when called, so VERSION
and a bare invocation cost nothing beyond pycni.skel. Like the reference,
it speaks spec 0.4.0 and later only (older configs get code 1).
"""

from __future__ import annotations

from pycni.plugins.lazy import lazy
from pycni.skel import Plugin

VERSIONS = ("0.4.0", "1.0.0", "1.1.0")

_MODULE = "pycni.plugins.firewall.plugin"

PLUGIN = Plugin(
    name="firewall",
    add=lazy(_MODULE, "cmd_add"),
    delete=lazy(_MODULE, "cmd_del"),
    check=lazy(_MODULE, "cmd_check"),
    gc=lazy(_MODULE, "cmd_gc"),
    versions=VERSIONS,
    about="pycni firewall: lets a pod's addresses through the host's forwarding filter (iptables or nftables)",
)

__all__ = ["PLUGIN"]
