"""The synthetic pod: a throw-away ADD, CHECK and DEL of the node's network, as a runtime would do them.

``run_synthetic(options, conf_file)`` creates a scratch network namespace
(``pycni-doctor-<random>``, container id ``pycni-doctor-<random>``), runs the
config that wins in the conf dir through the runtime library (pycni.runtime,
the plugins on the bin dirs, the node's cache dir), and always removes what
it made: DEL after a failed ADD or CHECK, then the namespace. The error of
the first step that failed is returned as the runtime would show it (the
check classifies it with ``explain``). This reproduces "pod stuck in
ContainerCreating" without a kubelet.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time

from pycni.doctor.snapshot import Options, SyntheticResult

__all__ = ["run_synthetic"]


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
    try:
        runtime = CniConfig(list(options.bin_dirs), cache_dir=options.cache_dir, timeout=timeout)
        netlist = load_file(os.path.join(options.conf_dir, conf_name))
        rt = RuntimeConf(container_id=f"pycni-doctor-{token}", netns=path, ifname="eth0",
                         args=(("IgnoreUnknown", "1"), ("K8S_POD_NAMESPACE", "pycni-doctor"),
                               ("K8S_POD_NAME", f"synthetic-{token}")))
        try:
            runtime.add_network_list(netlist, rt)
            step = "check"
            runtime.check_network_list(netlist, rt)
            step = "del"
            runtime.del_network_list(netlist, rt)
        except CniError as exc:
            if step != "del":
                with contextlib.suppress(CniError):
                    runtime.del_network_list(netlist, rt)
            return SyntheticResult(False, step, str(exc.msg), time.monotonic() - start)
        return SyntheticResult(True, "del", None, time.monotonic() - start)
    except CniError as exc:
        return SyntheticResult(False, step, str(exc.msg), time.monotonic() - start)
    finally:
        subprocess.run(["ip", "netns", "del", netns], capture_output=True, check=False, timeout=10)
