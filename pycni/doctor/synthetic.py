"""The synthetic pod: a throw-away ADD, CHECK and DEL of the node's network, as a runtime would do them.

``run_synthetic(options, conf_file)`` creates a scratch network namespace
(``pycni-doctor-<random>``, container id ``pycni-doctor-<random>``), runs the
config that wins in the conf dir through the runtime library (pycni.runtime,
the plugins on the bin dirs, the node's cache dir), and always removes what
it made: DEL after a failed ADD or CHECK, then the namespace. The error of
the first step that failed is returned as the runtime would show it (the
check classifies it with ``explain``). This reproduces "pod stuck in
ContainerCreating" without a kubelet.

Plugins that are this pycni's shims run in this process (``ShimsInProcess``),
as the shim itself would run them without an executor, minus a Python start
per call (nine of them for a pod's ADD, CHECK and DEL); any other binary is
exec'd as a runtime would. Whether the files can be exec'd at all is the
plugin checks' business.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from pycni.doctor.snapshot import Options, SyntheticResult

if TYPE_CHECKING:
    from pycni.runtime.libcni import CniConfig, RuntimeConf
    from pycni.spec.config import NetConfList

__all__ = ["ShimsInProcess", "run_synthetic"]


class ShimsInProcess:
    """The runtime's plugin-exec seam: this pycni's shims in-process (skel.dispatch), the rest exec'd."""

    def __init__(self) -> None:
        from pycni.runtime.invoke import RawExec

        self.raw = RawExec()

    def find(self, plugin_type: str, paths: Sequence[str]) -> str:
        return self.raw.find(plugin_type, paths)

    def exec_plugin(self, path: str, stdin: bytes, env: Mapping[str, str], timeout: float | None) -> bytes:
        from pycni import skel
        from pycni.registry import import_plugin, load_plugin
        from pycni.shimfile import shim_plugin_type
        from pycni.spec.errors import CniError

        plugin_type = shim_plugin_type(path)
        if plugin_type is None:
            return self.raw.exec_plugin(path, stdin, env, timeout)
        try:
            import_plugin(plugin_type)
            plugin = load_plugin(plugin_type)
        except (LookupError, ImportError):
            return self.raw.exec_plugin(path, stdin, env, timeout)
        outcome = skel.dispatch(plugin, {**os.environ, **env}, stdin)
        if outcome.exit_code == 0:
            return outcome.stdout
        raise CniError.from_wire(json.loads(outcome.stdout))


def run_synthetic(options: Options, conf_name: str, *, timeout: float = 20.0) -> SyntheticResult:
    from pycni.runtime.confdir import load_file
    from pycni.runtime.libcni import CniConfig, RuntimeConf
    from pycni.spec.errors import CniError

    start = time.monotonic()
    token = os.urandom(4).hex()
    netns = f"pycni-doctor-{token}"
    path = f"/run/netns/{netns}"
    made = subprocess.run(["ip", "netns", "add", netns], capture_output=True, text=True, check=False, timeout=10)
    if made.returncode != 0:
        return SyntheticResult(False, "setup", f"ip netns add {netns}: {made.stderr.strip()}",
                               time.monotonic() - start)
    step = "add"
    undo = None  # set while an ADD may have left something behind: DEL it whatever happens next
    try:
        runtime = CniConfig(list(options.bin_dirs), exec=ShimsInProcess(), cache_dir=options.cache_dir,
                            timeout=timeout)
        netlist = load_file(os.path.join(options.conf_dir, conf_name))
        rt = RuntimeConf(container_id=f"pycni-doctor-{token}", netns=path, ifname="eth0",
                         args=(("IgnoreUnknown", "1"), ("K8S_POD_NAMESPACE", "pycni-doctor"),
                               ("K8S_POD_NAME", f"synthetic-{token}")))
        undo = (runtime, netlist, rt)
        runtime.add_network_list(netlist, rt)
        step = "check"
        runtime.check_network_list(netlist, rt)
        step = "del"
        undo = None
        runtime.del_network_list(netlist, rt)
        return SyntheticResult(True, "del", None, time.monotonic() - start)
    except CniError as exc:
        return SyntheticResult(False, step, str(exc.msg), time.monotonic() - start)
    finally:
        if undo is not None:  # a failed (or interrupted) ADD or CHECK: the runtime's DEL, as kubelet would
            _clean_up(*undo)
        subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False, timeout=10)


def _clean_up(runtime: CniConfig, netlist: NetConfList, rt: RuntimeConf) -> None:
    """DEL the scratch pod; when a plugin of the chain cannot run (the fault being diagnosed), DEL with the
    others, so its address and host rules do not outlive doctor (libcni stops at the first failing plugin)."""
    from dataclasses import replace

    from pycni.spec.errors import CniError

    try:
        runtime.del_network_list(netlist, rt)
        return
    except CniError:
        pass
    runnable = []
    for plugin in netlist.plugins:
        try:
            runtime.exec.find(plugin.type, runtime.path)
        except CniError:
            continue
        runnable.append(plugin)
    with contextlib.suppress(CniError):
        runtime.del_network_list(replace(netlist, plugins=tuple(runnable)), rt)
