"""dhcp IPAM: ADD and DEL latency of pycni's dhcp plugin and daemon against Debian's Go ones, in the same run.

A dnsmasq in its own namespace serves a veth whose host end is the master
of Debian's Go macvlan plugin: the main plugin is the same for every
variant, only the IPAM differs. Pods are interleaved variant by variant, so
the machine's load hits them alike; each pod is a fresh netns, ADD then DEL,
plugins exec'd exactly as a runtime does.

- go                 /usr/lib/cni/dhcp and its daemon (``dhcp daemon``)
- pycni+executor     pycni's dhcp shim forwarding to a warm executor, and ``dhcp daemon`` from that shim
- pycni in-process   the same shim with no executor

Run as root from the repository: ``python benchmarks/dhcp.py [--pods N]``.
Everything it creates is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import GO_PLUGIN_DIR, PATH, REPO_ROOT, Executor
from tests.integration.dhcp_helpers import DhcpDaemon, DhcpServer, require_dnsmasq
from tests.support.netns import Netns


def exec_plugin(
    cni_path: list[str], command: str, config: dict, netns: str, container_id: str, extra_env: dict[str, str]
) -> float:
    """Seconds one call of the conflist's (only) plugin took; raises on failure."""
    env = {
        "PATH": PATH,
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": netns,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": os.pathsep.join(cni_path),
        **extra_env,
    }
    binary = next(Path(d, config["type"]) for d in cni_path if Path(d, config["type"]).exists())
    start = time.perf_counter()
    proc = subprocess.run(
        [str(binary)], input=json.dumps(config).encode(), env=env, capture_output=True, timeout=120, check=False
    )
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{command} failed: {proc.stdout.decode()} {proc.stderr.decode()}")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=8, help="pods per variant (default 8)")
    args = parser.parse_args()
    dnsmasq = require_dnsmasq()
    root = Path(tempfile.mkdtemp(prefix="pycni-bench-dhcp-"))
    server_ns = Netns(f"pcxb-{uuid.uuid4().hex[:8]}")
    subprocess.run(["ip", "netns", "add", server_ns.name], check=True)
    server = executor = None
    daemons: list[DhcpDaemon] = []
    try:
        server = DhcpServer(server_ns, root, bridge=f"pcxb{uuid.uuid4().hex[:6]}")
        server.start(dnsmasq)
        go_bin = root / "go-bin"  # no dhcp shim: ipam "dhcp" is Go's
        py_bin = root / "py-bin"
        go_bin.mkdir()
        py_bin.mkdir()
        from pycni.executor.install import install_plugins

        executor = Executor(root)
        install_plugins(py_bin, ["dhcp"], executor_socket=str(executor.socket))
        go_sock, py_sock = root / "go.sock", root / "py.sock"
        daemons.append(
            DhcpDaemon(
                [f"{GO_PLUGIN_DIR}/dhcp", "daemon", "-socketpath", str(go_sock)], go_sock, root / "go-daemon.log"
            ).start()
        )
        daemons.append(
            DhcpDaemon(
                [str(py_bin / "dhcp"), "daemon", "-socketpath", str(py_sock), "-statedir", str(root / "state")],
                py_sock,
                root / "py-daemon.log",
            ).start()
        )
        variants = {
            "go": ([str(go_bin), GO_PLUGIN_DIR], go_sock, {}),
            "pycni+executor": ([str(py_bin), GO_PLUGIN_DIR], py_sock, {"PYTHONPATH": str(REPO_ROOT)}),
            "pycni in-process": (
                [str(py_bin), GO_PLUGIN_DIR],
                py_sock,
                {"PYTHONPATH": str(REPO_ROOT), "PYCNI_EXECUTOR_SOCKET": ""},
            ),
        }
        times: dict[str, dict[str, list[float]]] = {name: {"ADD": [], "DEL": []} for name in variants}
        for _ in range(args.pods):
            for name, (cni_path, sock, env) in variants.items():
                pod = Netns(f"pcxb-{uuid.uuid4().hex[:8]}")
                subprocess.run(["ip", "netns", "add", pod.name], check=True)
                try:
                    config = {
                        "cniVersion": "1.0.0",
                        "name": "pcxb-dhcp",
                        "type": "macvlan",
                        "master": server.plain.host_end,
                        "ipam": {"type": "dhcp", "daemonSocketPath": str(sock)},
                    }
                    cid = f"bench-{pod.name}"
                    times[name]["ADD"].append(exec_plugin(cni_path, "ADD", config, pod.path, cid, env))
                    times[name]["DEL"].append(exec_plugin(cni_path, "DEL", config, pod.path, cid, env))
                finally:
                    subprocess.run(["ip", "netns", "delete", pod.name], check=False)
        time.sleep(1)
        leaked = len(server.leases())
        go = times["go"]
        print(f"dhcp IPAM under Go's macvlan, median of {args.pods} pods (ratio = pycni / go):")
        for name, spent in times.items():
            add, dele = statistics.median(spent["ADD"]), statistics.median(spent["DEL"])
            ratio = (add + dele) / (statistics.median(go["ADD"]) + statistics.median(go["DEL"]))
            print(f"  {name:18} ADD {add * 1000:7.1f} ms  DEL {dele * 1000:6.1f} ms  ADD+DEL ratio {ratio:.2f}")
        print(f"  leases left at the server after every DEL: {leaked}")
        return 0
    finally:
        for daemon in daemons:
            daemon.stop()
        if executor is not None:
            executor.stop()
        if server is not None:
            server.stop()
        subprocess.run(["ip", "netns", "delete", server_ns.name], check=False)


if __name__ == "__main__":
    sys.exit(main())
