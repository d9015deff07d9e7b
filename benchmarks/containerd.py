"""containerd's ``ctr run --cni`` on pycni's plugins against Debian's Go plugins, measured in the same run.

One private containerd per variant (``tests.support.containerd``: own root,
state, socket, mount namespace), each with the same conflist (bridge +
host-local) on its own bridge and subnet:

- go                Debian's bridge and host-local from /usr/lib/cni
- pycni+executor    pycni's shims, forwarding to a warm ``pycni executor``
- pycni in-process  the same shims with forwarding off

What is timed is a container's whole attached life as a user sees it:
``ctr run --cni --rm IMAGE ID true`` (create, CNI ADD, start, exit, CNI
DEL, delete), median over ``--runs`` containers per variant, variants
interleaved run by run so the machine's load hits them alike. The
executor's own log adds what the bridge calls (with host-local delegated
in-process) cost inside it. Run as root from the repository:
``python benchmarks/containerd.py``. Everything it creates is removed.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import GO_PLUGIN_DIR, Executor, free_subnet, install_shims
from tests.support.containerd import IMAGE, Containerd, bridge_conflist, require_containerd

VARIANTS = ("go", "pycni+executor", "pycni in-process")


def one_life(ctrd: Containerd, name: str) -> float:
    """Seconds for ``ctr run --cni --rm IMAGE name true``; its address must be released by then."""
    started = time.perf_counter()
    done = ctrd.ctr("run", "--cni", "--rm", IMAGE, name, "true")
    elapsed = time.perf_counter() - started
    assert done.returncode == 0 and ctrd.reserved_ips() == [], (done.stderr, ctrd.reserved_ips())
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="containers per variant (default 20)")
    args = parser.parse_args()
    try:
        require_containerd()
    except BaseException as exc:  # pytest's skip/fail outcomes are BaseExceptions
        raise SystemExit(f"cannot run: {exc}") from None

    work = Path(tempfile.mkdtemp(prefix="pcx-ctrd-bench-", dir="/tmp"))
    shims = work / "shims"
    shims.mkdir()
    install_shims(shims, ("bridge", "host-local"))
    executor = Executor(work / "executor")
    worlds: dict[str, Containerd] = {}
    bridges: list[str] = []
    try:
        for variant in VARIANTS:
            bridge = f"pcxb{uuid.uuid4().hex[:8]}"
            bridges.append(bridge)
            root = work / variant.replace(" ", "-").replace("+", "-")
            conflist = bridge_conflist(f"pcxb-{uuid.uuid4().hex[:6]}", bridge, free_subnet(), root / "ipam")
            plugins = Path(GO_PLUGIN_DIR) if variant == "go" else shims
            socket = str(executor.socket) if variant == "pycni+executor" else ""
            worlds[variant] = Containerd(root / "world", conflist, plugins, env={"PYCNI_EXECUTOR_SOCKET": socket})
            worlds[variant].setup()
        for ctrd in worlds.values():  # one warm-up life each: first image unpack, first shim start
            one_life(ctrd, "warm")
        mark = executor.mark()
        times: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for run in range(args.runs):
            for variant, ctrd in worlds.items():
                times[variant].append(one_life(ctrd, f"c{run}"))
        inside = executor.durations(since=mark)
    finally:
        for ctrd in worlds.values():
            problems = ctrd.close()
            if problems:
                print("left behind:", *problems, sep="\n  ", file=sys.stderr)
        executor.stop()
        for bridge in bridges:
            subprocess.run(["ip", "link", "delete", bridge], capture_output=True, check=False)
        subprocess.run(["rm", "-rf", str(work)], check=False)

    go = statistics.median(times["go"])
    print(f"ctr run --cni --rm IMAGE ID true (containerd 1.6, bridge + host-local), median of {args.runs}:")
    for variant in VARIANTS:
        median = statistics.median(times[variant])
        print(f"  {variant:<17} {median * 1000:7.0f} ms   {median / go:4.2f}x go")
    for key in ("bridge ADD", "bridge DEL"):
        if key in inside:
            print(f"  inside the executor: {key} {inside[key]:.1f} ms (median)")


if __name__ == "__main__":
    main()
