"""The cold path: pycni's installed shims with no executor answering, against Debian's Go plugins, in the same run.

What a runtime sees on the first pods after boot or while the executor restarts:
the compiled shim finds no executor and execs Python, which runs the plugin
in-process. Measured from exec to exit, one fresh process per call, the variants
interleaved call by call so the machine's load hits them alike:

- VERSION of bridge (stdin ``{"cniVersion":"1.1.0"}``, what libcni sends);
- bridge + host-local ADD, then DEL, of a pod in a fresh network namespace
  (the bridge exists: the first pod's ADD, which creates it, is not counted);
- ``python -I -S -c pass``: the floor, the cost of starting the interpreter.

``--reference DIR`` adds a third variant in the same run: the same shims
importing pycni from another source tree (``git archive <commit> pycni |
tar -x -C DIR``), to compare a change with what it started from.

Each figure is the median wall time and the median CPU time (user + system of
the process, from its rusage), and pycni's ratio against Go. ``--imports`` also
prints the modules a cold bridge ADD imports that cost most (``python -X
importtime``, minimum over the calls). Targets (issue 15): VERSION <= 25 ms,
bridge ADD <= 50 ms, in-process, wall clock.

Run as root from the repository: ``.venv/bin/python benchmarks/cold.py [--calls N]``
(part of ``make bench``). Everything it creates is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import (
    GO_PLUGIN_DIR,
    NETWORK_PREFIX,
    PATH,
    REPO_ROOT,
    Cleanup,
    Pod,
    bridge_plugin,
    free_subnet,
    install_shims,
    new_pod,
    remove_pod,
    sh,
)

TARGETS_MS = {"VERSION": 25.0, "bridge ADD": 50.0}
_NO_EXECUTOR = {"PYCNI_EXECUTOR_SOCKET": "/nonexistent/pycni-cold-bench.sock"}


class ColdCleanup(Cleanup):
    """Removes this run's namespaces, bridges and directories, and leaves the host's firewall alone.

    The networks here add no firewall rule (bridge without ipMasq), so rules
    and chains that appear during the run under the shared network prefix
    are another benchmark's (benchmarks/run.py), which ``Cleanup`` would
    sweep away under it.
    """

    def run(self) -> list[str]:
        from benchmarks.harness import _our_netns

        for name in sorted(_our_netns):
            sh("ip", "netns", "delete", name, check=False)
            _our_netns.discard(name)
        for bridge in self.bridges:
            sh("ip", "link", "delete", bridge, check=False)
        for directory in self.dirs:
            shutil.rmtree(directory, ignore_errors=True)
        links = sh("ip", "-o", "link", "show", check=False).stdout
        return [f"link {b}" for b in self.bridges if f": {b}:" in links or f": {b}@" in links]


def timed(argv: list[str], env: dict[str, str], stdin: bytes) -> tuple[float, float, bytes]:
    """(wall s, CPU s, stdout) of one process; raises RuntimeError when it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, input=stdin, env=env, capture_output=True, timeout=120, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {proc.stdout.decode(errors='replace')} {proc.stderr.decode()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout


class Chain:
    """bridge + host-local on its own bridge, subnet and dataDir, for one variant's directory of plugins."""

    def __init__(self, cleanup: Cleanup, tag: str, plugin_dir: str, env: dict[str, str]) -> None:
        self.plugin_dir, self.env = plugin_dir, env
        self.bridge = f"pcxc{tag}{os.getpid() % 10000:04d}"
        cleanup.bridges.append(self.bridge)
        self.conf = {"cniVersion": "1.0.0", "name": f"{NETWORK_PREFIX}cold-{tag}",
                     **bridge_plugin(self.bridge, free_subnet(), cleanup.tmpdir(), podman=False)}

    def call(self, command: str, pod: Pod, result: bytes | None = None) -> tuple[float, float, bytes]:
        conf = dict(self.conf)
        if result is not None:
            conf["prevResult"] = json.loads(result)
        env = {"PATH": PATH, "CNI_COMMAND": command, "CNI_CONTAINERID": pod.container_id,
               "CNI_NETNS": pod.netns_path, "CNI_IFNAME": "eth0", "CNI_PATH": self.plugin_dir, **self.env}
        return timed([os.path.join(self.plugin_dir, "bridge")], env, json.dumps(conf).encode())


def reference_shims(shim_dir: Path, ref_dir: Path, reference: Path) -> None:
    """The shims of ``shim_dir`` again in ``ref_dir``, importing pycni from the source tree ``reference``."""
    from pycni.shimfile import patch_config, read_cshim_config

    for name in ("bridge", "host-local"):
        binary = (shim_dir / name).read_bytes()
        config = read_cshim_config(binary)
        if config is None:
            raise RuntimeError(f"{shim_dir / name} is not a C shim: --reference needs a C compiler")
        roots = [str(reference), *(root for root in config["root"] if root != str(REPO_ROOT))]
        (ref_dir / name).write_bytes(patch_config(binary, name, config["python"][0], roots, config["socket"][0]))
        (ref_dir / name).chmod(0o755)


def measure(calls: int, cleanup: Cleanup, shim_dir: Path, ref_dir: Path | None) -> dict[str, dict[str, list[float]]]:
    """Per figure and variant, the wall and CPU seconds of every call."""
    chains = {"go": Chain(cleanup, "go", GO_PLUGIN_DIR, {}), "pycni": Chain(cleanup, "py", str(shim_dir), _NO_EXECUTOR)}
    version = {"go": [os.path.join(GO_PLUGIN_DIR, "bridge")], "pycni": [str(shim_dir / "bridge")]}
    if ref_dir is not None:
        chains["reference"] = Chain(cleanup, "rf", str(ref_dir), _NO_EXECUTOR)
        version["reference"] = [str(ref_dir / "bridge")]
    request = b'{"cniVersion":"1.1.0"}'
    spent: dict[str, dict[str, list[float]]] = {}

    def note(figure: str, variant: str, wall: float, cpu: float) -> None:
        slot = spent.setdefault(f"{figure}|{variant}", {"wall": [], "cpu": []})
        slot["wall"].append(wall)
        slot["cpu"].append(cpu)

    for i in range(-1, calls):  # call -1 creates the bridges and warms the page cache: not counted
        order = list(chains) if i % 2 == 0 else list(reversed(chains))
        for variant in order:
            wall, cpu, _ = timed(version[variant], {"PATH": PATH, "CNI_COMMAND": "VERSION", **chains[variant].env},
                                 request)
            if i >= 0:
                note("VERSION", variant, wall, cpu)
        wall, cpu, _ = timed([sys.executable, "-I", "-S", "-c", "pass"], {}, b"")
        if i >= 0:
            note("python -I -S", "floor", wall, cpu)
        for variant in order:
            pod = new_pod()
            try:
                add_wall, add_cpu, result = chains[variant].call("ADD", pod)
                del_wall, del_cpu, _ = chains[variant].call("DEL", pod, result)
            finally:
                remove_pod(pod)
            if i >= 0:
                note("bridge ADD", variant, add_wall, add_cpu)
                note("bridge DEL", variant, del_wall, del_cpu)
    return spent


def import_costs(shim_dir: Path, cleanup: Cleanup, calls: int) -> list[tuple[str, float]]:
    """The top-level modules a cold bridge ADD imports, by their minimum cumulative import time (ms)."""
    from pycni.shimfile import import_roots

    chain = Chain(cleanup, "im", str(shim_dir), _NO_EXECUTOR)
    code = ("import sys;sys.path[:0]=sys.argv[2:];t=sys.argv[1];del sys.argv[1:];"
            "from pycni.executor.shim import fallback;fallback(t,False)")
    best: dict[str, float] = {}
    for i in range(calls + 1):  # call 0 creates the bridge (through pyroute2's IPRoute): not counted
        pod = new_pod()
        try:
            env = {"PATH": PATH, "CNI_COMMAND": "ADD", "CNI_CONTAINERID": pod.container_id,
                   "CNI_NETNS": pod.netns_path, "CNI_IFNAME": "eth0", "CNI_PATH": str(shim_dir), **_NO_EXECUTOR}
            proc = subprocess.run([sys.executable, "-X", "importtime", "-I", "-S", "-c", code, "bridge",
                                   *import_roots()], input=json.dumps(chain.conf).encode(), env=env,
                                  capture_output=True, timeout=120, check=True)
            chain.call("DEL", pod, proc.stdout)
        finally:
            remove_pod(pod)
        for line in proc.stderr.decode().splitlines() if i else ():
            match = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S+)$", line)  # top level: one space before
            if match:
                name, cumulative = match.group(2), int(match.group(1)) / 1000
                best[name] = min(best.get(name, cumulative), cumulative)
    return sorted(best.items(), key=lambda item: -item[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--calls", type=int, default=30, help="calls per figure and variant (default 30)")
    parser.add_argument("--imports", action="store_true", help="also list the costliest imports of a cold ADD")
    parser.add_argument("--json", help="write the figures to this file too")
    parser.add_argument("--reference", type=Path, help="a pycni source tree to measure too (see the docstring)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root (network namespaces, a bridge)", file=sys.stderr)
        return 2

    cleanup = ColdCleanup()
    try:
        shim_dir = cleanup.tmpdir()
        install_shims(shim_dir, ["bridge", "host-local"])
        ref_dir = None
        if args.reference is not None:
            ref_dir = cleanup.tmpdir()
            reference_shims(shim_dir, ref_dir, args.reference.resolve())
        spent = measure(args.calls, cleanup, shim_dir, ref_dir)
        imports = import_costs(shim_dir, cleanup, min(args.calls, 10)) if args.imports else []
    finally:
        leftovers = cleanup.run()
    medians = {key: {kind: statistics.median(values) * 1000 for kind, values in slot.items()}
               for key, slot in spent.items()}

    print(f"cold path, no executor: median of {args.calls} calls (ms); wall = exec to exit, CPU = user + system")
    print(f"{'':<16}{'Go wall':>9}{'CPU':>7}{'pycni wall':>12}{'CPU':>7}{'wall ratio':>12}{'target':>9}")
    for figure in ("VERSION", "bridge ADD", "bridge DEL"):
        go, py = medians[f"{figure}|go"], medians[f"{figure}|pycni"]
        target = f"<= {TARGETS_MS[figure]:.0f}" if figure in TARGETS_MS else ""
        print(f"{figure:<16}{go['wall']:>9.1f}{go['cpu']:>7.1f}{py['wall']:>12.1f}{py['cpu']:>7.1f}"
              f"{py['wall'] / go['wall']:>11.2f}x{target:>9}")
    if args.reference is not None:
        print(f"reference tree {args.reference}, same run:")
        for figure in ("VERSION", "bridge ADD", "bridge DEL"):
            ref, py = medians[f"{figure}|reference"], medians[f"{figure}|pycni"]
            print(f"{figure:<16}{'':>9}{'':>7}{ref['wall']:>12.1f}{ref['cpu']:>7.1f}"
                  f"   pycni/reference wall {py['wall'] / ref['wall']:.2f}x, CPU {py['cpu'] / ref['cpu']:.2f}x")
    floor = medians["python -I -S|floor"]
    print(f"{'python -I -S':<16}{'':>9}{'':>7}{floor['wall']:>12.1f}{floor['cpu']:>7.1f}"
          f"   (pycni VERSION = {medians['VERSION|pycni']['wall'] / floor['wall']:.2f}x a bare interpreter)")
    if imports:
        print("\ncostliest top-level imports of a cold bridge ADD (min cumulative ms, python -X importtime):")
        print(f"  {sum(ms for _, ms in imports):7.1f}  all {len(imports)} together (interpreter start-up's included)")
        for name, ms in imports[:15]:
            print(f"  {ms:7.1f}  {name}")
    if args.json:
        Path(args.json).write_text(json.dumps({"medians_ms": medians, "imports_ms": imports}, indent=2))
    for line in leftovers:
        print(f"left behind: {line}", file=sys.stderr)
    return 1 if leftovers else 0


if __name__ == "__main__":
    sys.exit(main())
