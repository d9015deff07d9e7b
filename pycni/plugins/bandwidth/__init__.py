"""bandwidth (chained): shape a veth attachment's traffic with token bucket filters.

Spec 6.17. ``conf`` reads the rates and bursts (config and the
``bandwidth`` capability), ``plugin`` has the commands; pycni.net.tc does
the kernel work. Spec versions 0.3.0 and later, as the reference.
"""

from __future__ import annotations

from pycni.plugins.lazy import lazy
from pycni.skel import Plugin
from pycni.spec.version import SUPPORTED_VERSIONS

_MODULE = "pycni.plugins.bandwidth.plugin"

PLUGIN = Plugin(
    name="bandwidth",
    add=lazy(_MODULE, "cmd_add"),
    delete=lazy(_MODULE, "cmd_del"),
    check=lazy(_MODULE, "cmd_check"),
    gc=lazy(_MODULE, "cmd_gc"),
    versions=SUPPORTED_VERSIONS[SUPPORTED_VERSIONS.index("0.3.0") :],
    about="pycni bandwidth: ingress/egress rate limits with tbf qdiscs (and an ifb for egress)",
)

__all__ = ["PLUGIN"]
