"""pycni against Debian's Go reference plugins, measured in the same run.

Plugins are exec'd exactly as a runtime execs them: one fresh process per
plugin call, ADD in chain order with prevResult, DEL in reverse, a fresh
network namespace per pod. Variants are interleaved pod by pod (latency)
or round by round (churn), so the machine's load hits them alike:

- go                Debian's plugins from /usr/lib/cni
- pycni+executor    pycni's shims, forwarding to a warm ``pycni executor``
- pycni in-process  the same shims with no executor running

Scenarios:

0. floor: one VERSION call per variant, and a bare ``python -I -S``
1. bridge + host-local: ADD and DEL latency (median over --pods pods)
2. the chain podman writes (bridge + host-local with ipMasq, portmap with one
   mapping, firewall, tuning): ADD and DEL latency
3. churn: pods/s with --workers parallel workers over --churn-pods pods of
   the podman chain, each pod ADD then DEL
4. cores: the same churn with everything (this script, the plugins it
   execs, every thread of the executor) pinned to the first N cores, for
   each N of --cores: how churn grows with cores

With the podman and churn scenarios it prints the executor's CPU (user +
system, all its processes, from /proc) per pod, ADD+DEL, and apart from it
the CPU of the tool processes the executor ran (iptables-restore).

Targets (issue 15; pycni+executor / go): podman ADD+DEL <= 0.25, bridge
ADD+DEL <= 0.8, churn >= 3.0; executor CPU per podman-chain pod <= 15 ms.
Run as root from the repository: ``python benchmarks/run.py`` (``make
bench``). Everything it creates is removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import queue
import random
import resource
import signal
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import (
    GO_PLUGIN_DIR,
    NETWORK_PREFIX,
    PODMAN_META,
    Cleanup,
    Executor,
    Network,
    Pod,
    Variant,
    bridge_plugin,
    free_subnet,
    install_shims,
    new_pod,
    pycni_types,
    remove_pod,
)

TARGETS = {"bridge": 0.8, "podman": 0.25}
CHURN_TARGET = 3.0
CPU_TARGET_MS = 15.0
_ports = itertools.count(random.randrange(20000, 40000, 100))  # host ports: another run beside this one uses others


def make_variants(cleanup: Cleanup, types: list[str], executor: Executor | None,
                  in_process: bool) -> list[Variant]:
    have, missing = pycni_types(types)
    shim_dir = cleanup.tmpdir()
    install_shims(shim_dir, have)
    pycni_path = (str(shim_dir), GO_PLUGIN_DIR)
    variants = [Variant("go", (GO_PLUGIN_DIR,))]
    if executor is not None:
        variants.append(Variant("pycni+executor", pycni_path, {"PYCNI_EXECUTOR_SOCKET": str(executor.socket)},
                                tuple(missing)))
    if in_process:
        variants.append(Variant("pycni in-process", pycni_path, {"PYCNI_EXECUTOR_SOCKET": "/nonexistent/socket"},
                                tuple(missing)))
    return variants


def make_network(cleanup: Cleanup, variant: Variant, chain: str) -> Network:
    tag = "go" if variant.name == "go" else ("ex" if "executor" in variant.name else "ip")
    bridge = f"pcxb{tag}{uuid.uuid4().hex[:6]}"
    cleanup.bridges.append(bridge)
    data_dir = cleanup.tmpdir()
    subnet = free_subnet()
    plugins = [bridge_plugin(bridge, subnet, data_dir, podman=chain == "podman")]
    if chain == "podman":
        plugins += PODMAN_META
    return Network(variant, f"{NETWORK_PREFIX}{chain}-{tag}", bridge, subnet, data_dir, plugins)


class Failures:
    """Pods whose chain failed (a test run next to the benchmark can break the Go plugins' iptables chains).

    The pod is DEL'd and another one measured instead; more than ``limit`` failures end the run.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.by_variant: dict[str, int] = {}
        self._lock = threading.Lock()

    def record(self, network: Network, pod: Pod, exc: BaseException) -> None:
        print(f"\n{network.variant.name}: {exc}", file=sys.stderr)
        with contextlib.suppress(Exception):
            network.delete(pod, best_effort=True)
        with self._lock:
            self.by_variant[network.variant.name] = self.by_variant.get(network.variant.name, 0) + 1
            if sum(self.by_variant.values()) > self.limit:
                raise RuntimeError(f"too many failed pods: {self.by_variant}") from exc


def latency(networks: list[Network], pods: int, failures: Failures, warmup: int = 2) -> dict[str, dict[str, float]]:
    """Median ADD and DEL time of each network's chain, pods interleaved across networks."""
    times: dict[str, dict[str, list[float]]] = {n.variant.name: {"add": [], "del": []} for n in networks}
    # CPU (user, system) of the processes each pod's calls exec'd (plugins, or pycni's shims) and reaped,
    # their own tools included: calls run one at a time here, so the delta is the pod's.
    cpu: dict[str, list[tuple[float, float]]] = {n.variant.name: [] for n in networks}
    i = 0
    while i < warmup + pods:
        order = networks if i % 2 == 0 else list(reversed(networks))
        for network in order:
            while True:
                pod = new_pod(next(_ports))
                try:
                    before = resource.getrusage(resource.RUSAGE_CHILDREN)
                    start = time.perf_counter()
                    network.add(pod)
                    added = time.perf_counter()
                    network.delete(pod)
                    deleted = time.perf_counter()
                    after = resource.getrusage(resource.RUSAGE_CHILDREN)
                    break
                except RuntimeError as exc:
                    failures.record(network, pod, exc)
                finally:
                    remove_pod(pod)
            if i >= warmup:
                times[network.variant.name]["add"].append(added - start)
                times[network.variant.name]["del"].append(deleted - added)
                cpu[network.variant.name].append((after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime))
        i += 1
        print(".", end="", flush=True, file=sys.stderr)
    print(file=sys.stderr)
    for network in networks:
        assert network.reserved_ips() == [], f"{network.variant.name} leaked IPs: {network.reserved_ips()}"
    return {
        name: {
            "add": statistics.median(t["add"]) * 1000,
            "del": statistics.median(t["del"]) * 1000,
            "add+del": statistics.median(a + d for a, d in zip(t["add"], t["del"], strict=True)) * 1000,
            "exec_cpu_user": statistics.mean(u for u, _ in cpu[name]) * 1000,
            "exec_cpu_system": statistics.mean(k for _, k in cpu[name]) * 1000,
        }
        for name, t in times.items()
    }


def floor(variants: list[Variant], calls: int = 40) -> dict[str, float]:
    """Median ms of one VERSION call per variant, and of a bare ``python -I -S``: the cost of a process."""
    import subprocess

    commands = {v.name: ([os.path.join(v.cni_path[0], "bridge")], {"CNI_COMMAND": "VERSION", **v.env})
                for v in variants}
    commands["python -I -S -c pass"] = ([sys.executable, "-I", "-S", "-c", "pass"], {})
    spent: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(calls):
        for name, (argv, env) in commands.items():
            start = time.perf_counter()
            subprocess.run(argv, input=b"{}", env=env, capture_output=True, check=True)
            spent[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) * 1000 for name, times in spent.items()}


def churn_round(network: Network, pods: list[Pod], workers: int, failures: Failures) -> tuple[float, int]:
    """Seconds for ``workers`` threads to ADD then DEL every pod, and how many pods made it."""
    work: queue.Queue[Pod] = queue.Queue()
    for pod in pods:
        work.put(pod)
    errors: list[BaseException] = []
    done: list[Pod] = []

    def worker() -> None:
        while not errors:
            try:
                pod = work.get_nowait()
            except queue.Empty:
                return
            try:
                network.add(pod)
                network.delete(pod)
                done.append(pod)
            except RuntimeError as exc:
                try:
                    failures.record(network, pod, exc)
                except BaseException as fatal:
                    errors.append(fatal)
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return elapsed, len(done)


def churn(networks: list[Network], pods: int, workers: int, rounds: int, failures: Failures) -> dict[str, float]:
    """Pods/s per network over ``pods`` pods, in ``rounds`` interleaved rounds."""
    per_round = max(workers, pods // rounds)
    total = {n.variant.name: [0, 0.0] for n in networks}
    for network in networks:  # the first pod makes the bridge and its gateway address, as on a real node
        pod = new_pod(next(_ports))
        try:
            network.add(pod)
            network.delete(pod)
        finally:
            remove_pod(pod)
    for r in range(rounds):
        order = networks if r % 2 == 0 else list(reversed(networks))
        for network in order:
            batch = [new_pod(next(_ports)) for _ in range(per_round)]
            try:
                elapsed, made = churn_round(network, batch, workers, failures)
            finally:
                for pod in batch:
                    remove_pod(pod)
            total[network.variant.name][0] += made
            total[network.variant.name][1] += elapsed
            print(".", end="", flush=True, file=sys.stderr)
        assert all(n.reserved_ips() == [] for n in networks)
    print(file=sys.stderr)
    return {name: count / seconds for name, (count, seconds) in total.items()}


def executor_pids(executor: Executor) -> list[int]:
    """The executor's process and its worker processes."""
    pid = executor.proc.pid
    with contextlib.suppress(OSError):
        return [pid, *(int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]
    return [pid]


def executor_cpu_seconds(executor: Executor, *, children: bool = False) -> float:
    """CPU time (user + system) the executor and its worker processes have used so far.

    ``children``: instead, the CPU of the processes they ran and reaped (iptables-restore and the like).
    """
    return sum(executor_cpu_split(executor, children=children))


def executor_cpu_split(executor: Executor, *, children: bool = False) -> tuple[float, float]:
    """``executor_cpu_seconds`` as (user, system): system is the kernel's work done in its calls."""
    user = system = 0.0
    first = 13 if children else 11
    for pid in executor_pids(executor):
        with contextlib.suppress(OSError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            user += int(fields[first]) / os.sysconf("SC_CLK_TCK")
            system += int(fields[first + 1]) / os.sysconf("SC_CLK_TCK")
    return user, system


def pin(cpus: set[int], executor: Executor) -> None:
    """Run this benchmark (and the plugins it execs) and every thread of the executor on ``cpus`` only."""
    os.sched_setaffinity(0, cpus)
    pids = executor_pids(executor)
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(task.name), cpus)


def churn_by_cores(networks: list[Network], pods: int, workers: int, rounds: int, failures: Failures,
                   executor: Executor, core_counts: list[int]) -> dict[str, dict[str, float]]:
    """Churn (pods/s per variant) with everything pinned to the first N cores, for each N in ``core_counts``."""
    available = sorted(os.sched_getaffinity(0))
    found: dict[str, dict[str, float]] = {}
    try:
        for count in core_counts:
            if count > len(available):
                print(f"note: only {len(available)} cores here, skipping {count}", file=sys.stderr)
                continue
            pin(set(available[:count]), executor)
            found[str(count)] = churn(networks, pods, workers, rounds, failures)
    finally:
        pin(set(available), executor)
    return found


def report(results: dict[str, object], variants_by_scenario: dict[str, list[Variant]]) -> list[str]:
    lines = []
    for scenario in ("bridge", "podman"):
        data = results.get(scenario)
        if not isinstance(data, dict):
            continue
        title = {"bridge": "bridge + host-local", "podman": "podman chain (bridge+host-local, portmap, firewall, "
                 "tuning)"}[scenario]
        lines.append(f"\n{title}, median over {results['pods']} pods (ms)")
        lines.append(f"  {'variant':<42} {'ADD':>8} {'DEL':>8} {'ADD+DEL':>9}   pycni/Go ADD  DEL  ADD+DEL")
        go = data["go"]
        for variant in variants_by_scenario[scenario]:
            row = data[variant.name]
            ratios = ""
            if variant.name != "go":
                add, dele, both = (row[k] / go[k] for k in ("add", "del", "add+del"))
                ratios = f"   {add:>10.2f} {dele:>4.2f} {both:>8.2f}"
            figures = f"{row['add']:>8.1f} {row['del']:>8.1f} {row['add+del']:>9.1f}"
            lines.append(f"  {variant.label():<42} {figures}{ratios}")
    data = results.get("churn")
    if isinstance(data, dict):
        lines.append(f"\nchurn, podman chain, {results['workers']} workers, {results['churn_pods']} pods per variant")
        for variant in variants_by_scenario["churn"]:
            rate = data[variant.name]
            ratio = "" if variant.name == "go" else f"   pycni/Go {rate / data['go']:.2f}"
            lines.append(f"  {variant.label():<42} {rate:>8.2f} pods/s{ratio}")
    data = results.get("cores")
    if isinstance(data, dict) and data:
        lines.append(f"\nchurn by cores (everything pinned with sched_setaffinity), {results['workers']} workers, "
                     "pods/s")
        names = [v.name for v in variants_by_scenario["cores"]]
        lines.append(f"  {'cores':<6}" + "".join(f"{name:>18}" for name in names) + "   pycni+executor/Go")
        for count, rates in data.items():
            share = rates.get("pycni+executor", 0) / rates["go"] if rates.get("go") else 0
            lines.append(f"  {count:<6}" + "".join(f"{rates[name]:>18.2f}" for name in names) + f"   {share:>8.2f}")
        counts = list(data)
        if len(counts) >= 2:
            first, last = data[counts[0]], data[counts[-1]]
            lines.append(f"  {counts[-1]} cores / {counts[0]}: " + ", ".join(
                f"{name} {last[name] / first[name]:.2f}x" for name in names if first.get(name)))
    cpu = results.get("executor_cpu_ms_per_pod")
    if isinstance(cpu, dict) and cpu:
        lines.append("\nexecutor CPU (user + system, all its processes; the tool processes it ran apart) per pod of "
                     "the chain, ADD+DEL (ms)")
        lines.extend(f"  {scenario:<20} {ms:>7.1f}" for scenario, ms in cpu.items())
    data = results.get("floor")
    if isinstance(data, dict):
        lines.append("\none process, no work: VERSION of bridge (median ms)")
        lines.extend(f"  {name:<42} {ms:>8.1f}" for name, ms in data.items())
    for scenario in ("bridge", "podman"):
        inside = results.get(f"{scenario}_inside_executor_ms")
        if isinstance(inside, dict) and inside:
            lines.append(f"\n{scenario}: time a call spends inside the executor (median ms; the rest is the "
                         "shim's process start)")
            lines.extend(f"  {key:<20} {ms:>7.1f}" for key, ms in inside.items() if not key.endswith("VERSION"))
    lines.append("\ntargets (pycni+executor / go, same run):")
    for scenario, limit in TARGETS.items():
        data = results.get(scenario)
        if isinstance(data, dict) and "pycni+executor" in data:
            ratio = data["pycni+executor"]["add+del"] / data["go"]["add+del"]
            verdict = "met" if ratio <= limit else "MISSED"
            lines.append(f"  {scenario:<8} ADD+DEL {ratio:.2f} (target <= {limit}) {verdict}")
    data = results.get("churn")
    if isinstance(data, dict) and "pycni+executor" in data:
        ratio = data["pycni+executor"] / data["go"]
        lines.append(f"  churn    pods/s  {ratio:.2f} (target >= {CHURN_TARGET}) "
                     f"{'met' if ratio >= CHURN_TARGET else 'MISSED'}")
    cpu = results.get("executor_cpu_ms_per_pod")
    podman = results.get("podman")
    if isinstance(cpu, dict) and "podman" in cpu and isinstance(podman, dict) and "pycni+executor" in podman:
        # The whole CPU a pod costs the node, kernel work in its calls included, against Go's processes.
        go, ours = podman["go"], podman["pycni+executor"]
        go_total = go["exec_cpu_user"] + go["exec_cpu_system"]
        shims = ours["exec_cpu_user"] + ours["exec_cpu_system"]
        whole = shims + cpu["podman"] + cpu.get("podman, tools it ran", 0.0)
        lines.append(f"  CPU per podman pod, ADD+DEL, all processes (ms): go {go_total:.1f} (system "
                     f"{go['exec_cpu_system']:.1f}); pycni {whole:.1f} = shims {shims:.1f} + executor "
                     f"{cpu['podman']:.1f} (system {cpu.get('podman, of which system', 0.0):.1f}) + its tools "
                     f"{cpu.get('podman, tools it ran', 0.0):.1f}: {whole / go_total:.2f}x Go")
    if isinstance(cpu, dict) and "podman" in cpu:
        lines.append(f"  executor CPU per podman pod {cpu['podman']:.1f} ms (target <= {CPU_TARGET_MS:g}) "
                     f"{'met' if cpu['podman'] <= CPU_TARGET_MS else 'MISSED'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=30, help="pods per variant for the latency scenarios (>= 30)")
    parser.add_argument("--churn-pods", type=int, default=100, help="pods per variant for churn (>= 100)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=4, help="churn rounds per variant, interleaved")
    parser.add_argument("--scenarios", default="floor,bridge,podman,churn,cores")
    parser.add_argument("--executor-processes", type=int, help="the executor's --processes (default: its own, one "
                        "per core)")
    parser.add_argument("--cores", default="1,2", help="core counts for the cores scenario (churn pinned to the "
                        "first N cores)")
    parser.add_argument("--no-in-process", action="store_true", help="skip the pycni variant without executor")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    scenarios = [s for s in args.scenarios.split(",") if s]

    # SIGTERM (timeout(1), a CI step cancelled) unwinds like Ctrl-C: the finally below removes what the run made
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cleanup = Cleanup()
    executor = Executor(cleanup.tmpdir(), *(["--processes", str(args.executor_processes)]
                                            if args.executor_processes else []))
    results: dict[str, object] = {"pods": args.pods, "churn_pods": args.churn_pods, "workers": args.workers}
    variants_by_scenario: dict[str, list[Variant]] = {}
    failures = Failures(limit=max(10, (args.pods + args.churn_pods) // 4))  # each failed pod is measured again
    cpu_per_pod: dict[str, float] = {}
    results["executor_cpu_ms_per_pod"] = cpu_per_pod
    try:
        runs: dict[str, tuple[str, Callable[[list[Network]], object]]] = {
            "bridge": ("bridge", lambda nets: latency(nets, args.pods, failures)),
            "podman": ("podman", lambda nets: latency(nets, args.pods, failures)),
            "churn": ("podman", lambda nets: churn(nets, args.churn_pods, args.workers, args.rounds, failures)),
            "cores": ("podman", lambda nets: churn_by_cores(
                [n for n in nets if n.variant.name != "pycni in-process"], args.churn_pods, args.workers,
                args.rounds, failures, executor, [int(c) for c in args.cores.split(",") if c])),
            "floor": ("bridge", lambda nets: floor([n.variant for n in nets])),
        }
        for scenario in scenarios:
            chain, measure = runs[scenario]
            types = ["bridge", "host-local"] + ([str(p["type"]) for p in PODMAN_META] if chain == "podman" else [])
            variants = make_variants(cleanup, types, executor, not args.no_in_process)
            variants_by_scenario[scenario] = variants
            for variant in variants:
                if variant.fallbacks:
                    print(f"note: pycni has no usable {', '.join(variant.fallbacks)}; "
                          f"{variant.name} runs Debian's Go binary for it", file=sys.stderr)
            print(f"{scenario}: {', '.join(v.name for v in variants)}", file=sys.stderr)
            if scenario == "cores":
                variants = [v for v in variants if v.name != "pycni in-process"]
                variants_by_scenario[scenario] = variants
            mark = executor.mark()
            split_before, calls_before = executor_cpu_split(executor), executor.calls()
            tools_before = executor_cpu_seconds(executor, children=True)
            results[scenario] = measure([make_network(cleanup, v, chain) for v in variants])
            if scenario in ("podman", "churn"):
                pods_through_executor = (executor.calls() - calls_before) / (2 * (1 + len(PODMAN_META)))
                if pods_through_executor:
                    user, system = (now - then for now, then in zip(executor_cpu_split(executor), split_before,
                                                                    strict=True))
                    cpu_per_pod[scenario] = (user + system) * 1000 / pods_through_executor
                    cpu_per_pod[f"{scenario}, of which system"] = system * 1000 / pods_through_executor
                    tools = executor_cpu_seconds(executor, children=True) - tools_before
                    cpu_per_pod[f"{scenario}, tools it ran"] = tools * 1000 / pods_through_executor
            if scenario in ("bridge", "podman"):
                results[f"{scenario}_inside_executor_ms"] = executor.durations(since=mark)
        results["executor_calls"] = executor.calls()
        results["failed_pods"] = failures.by_variant
    finally:
        executor.stop()
        leftovers = cleanup.run()
    lines = report(results, variants_by_scenario)
    if failures.by_variant:
        lines.append(f"\npods that failed and were measured again: {failures.by_variant}")
    print("\n".join(lines))
    if leftovers:
        print(f"\nleft on the host (could not remove): {leftovers}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
