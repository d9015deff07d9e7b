"""The executor's memory after many pods: RSS of a private ``pycni executor`` while it serves N pods.

Each pod is what a runtime does: a fresh network namespace, bridge +
host-local ADD then DEL through the installed (compiled) shims forwarding
to the executor, the namespace deleted. Every ``--every`` pods the
executor's memory is read from /proc (the proportional set size of the
supervisor and its worker processes, summed: what they cost together; and
the largest resident set of one of them) with their thread count, so
what grows shows as a slope. Target (issue 15): <= 80 MB after 10,000
pods.

Run as root from the repository: ``.venv/bin/python benchmarks/memory.py
[--pods 10000] [--every 1000]``. Not part of ``make bench`` (10,000 pods
take ~15 minutes). Everything it creates is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import (
    NETWORK_PREFIX,
    PATH,
    Cleanup,
    Executor,
    bridge_plugin,
    free_subnet,
    install_shims,
    sh,
)


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def status(pid: int) -> tuple[int, int, int]:
    """(VmRSS KiB, Pss KiB, threads) of one process; zeros when it is gone.

    Pss counts a page shared by n processes as 1/n in each: the workers share the
    warm interpreter copy-on-write, so summing their RSS would count it n times.
    """
    rss = pss = threads = 0
    try:
        with open(f"/proc/{pid}/status") as file:
            for line in file:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
        with open(f"/proc/{pid}/smaps_rollup") as file:
            for line in file:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss, threads


def sample(executor: Executor) -> dict[str, float]:
    per_process = [status(pid) for pid in process_tree(executor.proc.pid)]
    return {"pss_mb": sum(p for _, p, _ in per_process) / 1024,
            "largest_mb": max(r for r, _, _ in per_process) / 1024,
            "processes": len(per_process), "threads": sum(t for _, _, t in per_process)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--pods", type=int, default=10000)
    parser.add_argument("--every", type=int, default=1000)
    args = parser.parse_args()
    cleanup = Cleanup()
    executor = None
    try:
        shim_dir = cleanup.tmpdir()
        install_shims(shim_dir, ["bridge", "host-local"])
        executor = Executor(cleanup.tmpdir())
        bridge = f"pcxm{os.getpid() % 10000:04d}"
        cleanup.bridges.append(bridge)
        conf = json.dumps({"cniVersion": "1.0.0", "name": f"{NETWORK_PREFIX}memory",
                           **bridge_plugin(bridge, free_subnet(), cleanup.tmpdir(), podman=False)}).encode()
        env = {"PATH": PATH, "CNI_IFNAME": "eth0", "CNI_PATH": str(shim_dir),
               "PYCNI_EXECUTOR_SOCKET": str(executor.socket)}
        print(f"{'pods':>7}{'PSS MB, all':>13}{'largest RSS':>13}{'procs':>7}{'threads':>9}{'s/1000 pods':>13}",
              flush=True)
        started = time.monotonic()
        for i in range(args.pods + 1):
            if i % args.every == 0:
                now = sample(executor)
                rate = (time.monotonic() - started) / i * 1000 if i else 0.0
                print(f"{i:>7}{now['pss_mb']:>13.1f}{now['largest_mb']:>13.1f}{now['processes']:>7.0f}"
                      f"{now['threads']:>9.0f}{rate:>13.0f}", flush=True)
            if i == args.pods:
                break
            netns = f"pcxmem-{os.getpid()}-{i}"  # not harness.new_pod's prefix: another benchmark's cleanup takes those
            sh("ip", "netns", "add", netns)
            try:
                call = {**env, "CNI_CONTAINERID": uuid.uuid4().hex, "CNI_NETNS": f"/run/netns/{netns}"}
                added = subprocess.run([str(shim_dir / "bridge")], input=conf, env={**call, "CNI_COMMAND": "ADD"},
                                       capture_output=True, timeout=120, check=False)
                if added.returncode != 0:
                    raise RuntimeError(f"ADD failed: {added.stdout.decode(errors='replace')}")
                deleted = subprocess.run([str(shim_dir / "bridge")], input=conf, env={**call, "CNI_COMMAND": "DEL"},
                                         capture_output=True, timeout=120, check=False)
                if deleted.returncode != 0:
                    raise RuntimeError(f"DEL failed: {deleted.stdout.decode(errors='replace')}")
            finally:
                sh("ip", "netns", "delete", netns, check=False)
    finally:
        if executor is not None:
            executor.stop()
        leftovers = cleanup.run()
    for line in leftovers:
        print(f"left behind: {line}", file=sys.stderr)
    return 1 if leftovers else 0


if __name__ == "__main__":
    sys.exit(main())
