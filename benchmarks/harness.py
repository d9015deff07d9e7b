"""What the benchmarks run: plugins exec'd exactly as a runtime does, in fresh namespaces, cleaned up after.

- ``Variant`` is one way to run a chain: Debian's Go plugins, or pycni's
  shims (with the executor, or in-process). A pycni variant whose plugin
  type pycni lacks falls back to the Go binary on CNI_PATH, and says so.
- ``Network`` is one conflist on its own bridge, subnet and host-local
  dataDir; ``add``/``delete`` run its chain like libcni: one fresh process
  per plugin, ADD in order with ``prevResult`` chained and
  ``runtimeConfig`` for the capabilities, DEL in reverse with the final
  result; CNI_ARGS as podman sets them.
- ``Cleanup`` remembers what existed before (netns, links, iptables chains,
  nft tables) and removes what the run made, reporting anything it could
  not remove.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
GO_PLUGIN_DIR = "/usr/lib/cni"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NETNS_PREFIX = "pcxb-"
# Network names, unique to this run: owner tags and the Go plugins' comments carry them, and the cleanup removes
# the rules that name them, so another benchmark running beside this one keeps its own.
NETWORK_PREFIX = f"pcxb-{uuid.uuid4().hex[:6]}-"

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=120)


# --------------------------------------------------------------------------
# Plugins: Go, or pycni's shims (and the executor)
# --------------------------------------------------------------------------


@dataclass
class Variant:
    name: str  # "go", "pycni+executor", "pycni in-process"
    cni_path: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    fallbacks: tuple[str, ...] = ()  # plugin types run by Go in a pycni variant

    def label(self) -> str:
        return self.name + (f" (Go {', '.join(self.fallbacks)})" if self.fallbacks else "")


def pycni_types(wanted: Sequence[str]) -> tuple[list[str], list[str]]:
    """(types pycni can run, types it cannot) among ``wanted``."""
    from pycni.plugins import PLUGIN_MODULES, import_plugin

    have, missing = [], []
    for plugin_type in wanted:
        try:
            if plugin_type not in PLUGIN_MODULES:
                raise LookupError(plugin_type)
            import_plugin(plugin_type)
            have.append(plugin_type)
        except Exception:
            missing.append(plugin_type)
    return have, missing


def install_shims(bin_dir: Path, plugin_types: Sequence[str]) -> None:
    import argparse

    from pycni.cli.install import cmd_install

    with open(os.devnull, "w") as quiet:
        stdout, sys.stdout = sys.stdout, quiet
        try:
            cmd_install(argparse.Namespace(bin_dir=str(bin_dir), plugins=list(plugin_types), force=False), {})
        finally:
            sys.stdout = stdout


def die_with_parent() -> None:
    """``preexec_fn``: SIGTERM the child when the thread that started it ends (PR_SET_PDEATHSIG)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


class Executor:
    """``pycni executor`` on a private socket, started and killed by PID."""

    def __init__(self, directory: Path, *args: str) -> None:
        self.socket = directory / "executor.sock"
        self.log = directory / "executor.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pycni", "executor", "--socket", str(self.socket), "--log-file", str(self.log),
             *args],
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, cwd="/",
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,  # a benchmark killed before its cleanup leaves no executor behind
        )
        deadline = time.monotonic() + 120
        while '"event": "listening"' not in (self.log.read_text() if self.log.exists() else ""):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the executor did not start: {self.log.read_text() if self.log.exists() else ''}")
            time.sleep(0.05)

    def calls(self) -> int:
        return self.log.read_text().count('"event": "call"')

    def mark(self) -> int:
        """A position in the log: ``durations(since=mark)`` looks only at calls logged after it."""
        return len(self.log.read_text().splitlines())

    def durations(self, since: int = 0) -> dict[str, float]:
        """Median ms each plugin call spent inside the executor, by "plugin COMMAND"."""
        import statistics

        spent: dict[str, list[float]] = {}
        for line in self.log.read_text().splitlines()[since:]:
            event = json.loads(line)
            if event["event"] == "call":
                spent.setdefault(f"{event['plugin']} {event['command']}", []).append(event["duration_ms"])
        return {key: statistics.median(values) for key, values in sorted(spent.items())}

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


# --------------------------------------------------------------------------
# A network and its chain, run like libcni
# --------------------------------------------------------------------------


@dataclass
class Network:
    variant: Variant
    name: str
    bridge: str
    subnet: str
    data_dir: Path
    plugins: list[dict[str, Any]]
    version: str = "0.4.0"

    def _stdin(self, plugin: dict[str, Any], prev: dict[str, Any] | None, caps: dict[str, Any]) -> bytes:
        conf: dict[str, Any] = {"cniVersion": self.version, "name": self.name, **plugin}
        wanted = {k: v for k, v in caps.items() if plugin.get("capabilities", {}).get(k)}
        if wanted:
            conf["runtimeConfig"] = wanted
        if prev is not None:
            conf["prevResult"] = prev
        return json.dumps(conf).encode()

    def _exec(self, command: str, plugin: dict[str, Any], stdin: bytes, pod: Pod) -> bytes:
        path = next(p for d in self.variant.cni_path if os.path.isfile(p := os.path.join(d, plugin["type"])))
        env = {
            "PATH": PATH,
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": pod.container_id,
            "CNI_NETNS": pod.netns_path,
            "CNI_IFNAME": "eth0",
            "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAME={pod.name}",
            "CNI_PATH": os.pathsep.join(self.variant.cni_path),
            **self.variant.env,
        }
        proc = subprocess.run([path], input=stdin, env=env, capture_output=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{self.variant.name} {plugin['type']} {command} failed: "
                               f"{proc.stdout.decode(errors='replace')} {proc.stderr.decode(errors='replace')}")
        return proc.stdout

    def add(self, pod: Pod) -> None:
        prev: dict[str, Any] | None = None
        for plugin in self.plugins:
            prev = json.loads(self._exec("ADD", plugin, self._stdin(plugin, prev, pod.caps), pod))
        pod.result = prev

    def delete(self, pod: Pod, *, best_effort: bool = False) -> None:
        """DEL the chain in reverse; ``best_effort`` goes on past a failing plugin (cleaning up after a failure)."""
        for plugin in reversed(self.plugins):
            try:
                self._exec("DEL", plugin, self._stdin(plugin, pod.result, pod.caps), pod)
            except RuntimeError:
                if not best_effort:
                    raise
        pod.result = None

    def reserved_ips(self) -> list[str]:
        net_dir = self.data_dir / self.name
        if not net_dir.is_dir():
            return []
        return [p.name for p in net_dir.iterdir() if p.name[0].isdigit()]


@dataclass
class Pod:
    name: str
    container_id: str
    caps: dict[str, Any]
    result: dict[str, Any] | None = None

    @property
    def netns_path(self) -> str:
        return f"/run/netns/{self.name}"


_pod_counter = 0
_our_netns: set[str] = set()  # made by this process and not yet deleted: all Cleanup may remove


def new_pod(host_port: int | None = None) -> Pod:
    """A fresh network namespace (lo up) and the pod's identity; ``host_port`` adds one port mapping."""
    global _pod_counter
    _pod_counter += 1
    name = f"{NETNS_PREFIX}{uuid.uuid4().hex[:10]}"
    _our_netns.add(name)
    sh("ip", "netns", "add", name)
    sh("ip", "-n", name, "link", "set", "lo", "up")
    caps: dict[str, Any] = {}
    if host_port is not None:
        caps["portMappings"] = [{"hostPort": host_port, "containerPort": 80, "protocol": "tcp"}]
    return Pod(name, uuid.uuid4().hex, caps)


def remove_pod(pod: Pod) -> None:
    sh("ip", "netns", "delete", pod.name, check=False)
    _our_netns.discard(pod.name)


def free_subnet() -> str:
    """A random 10.x.y.0/24 no interface or route on the host uses (the integration tests' picker)."""
    from tests.support.subnets import free_subnet4

    return str(free_subnet4())


def bridge_plugin(bridge: str, subnet: str, data_dir: Path, *, podman: bool) -> dict[str, Any]:
    gateway = subnet.rsplit(".", 1)[0] + ".1"
    ipam = {"type": "host-local", "routes": [{"dst": "0.0.0.0/0"}],
            "ranges": [[{"subnet": subnet, "gateway": gateway}]], "dataDir": str(data_dir)}
    plugin: dict[str, Any] = {"type": "bridge", "bridge": bridge, "isGateway": True}
    if podman:  # exactly what podman 4.3 writes (tests/support/podman.py), plus our dataDir
        plugin.update({"ipMasq": True, "hairpinMode": True, "ipam": ipam, "capabilities": {"ips": True}})
    else:
        plugin["ipam"] = ipam
    return plugin


PODMAN_META: list[dict[str, Any]] = [
    {"type": "portmap", "capabilities": {"portMappings": True}},
    {"type": "firewall", "backend": ""},
    {"type": "tuning"},
]


# --------------------------------------------------------------------------
# Leaving the host as we found it
# --------------------------------------------------------------------------


def _gc_portmap_networks(listing: str) -> None:
    """portmap GC, no attachment valid, of each of this run's networks in pycni's portmap table: their sets
    and lookup rules stay after the last DEL (as the reference's chains do) until the runtime drops them."""
    from pycni.plugins.portmap.nft_io import NftBackend

    for network in sorted(set(re.findall(rf"net=({re.escape(NETWORK_PREFIX)}[^\s\"]*)", listing))):
        try:
            NftBackend().gc(network, set())
        except Exception as exc:  # reported below as a leftover
            print(f"portmap GC of {network} failed: {exc}", file=sys.stderr)


def _base_layout_rule(rule: dict[str, Any]) -> bool:
    """A rule of a plugin table's fixed layout, kept while the table exists: portmap's jumps into its chains,
    masquerade's base chain (multicast returns, the goto to masq_checks); no attachment uses it."""
    if str(rule.get("comment", "")).startswith("pycni/portmap base"):
        return True
    return rule.get("table") == "cni_plugins_masquerade" and rule.get("chain") == "postrouting"


class Cleanup:
    def __init__(self) -> None:
        from tests.support.host_firewall import HostFirewallSnapshot

        self.firewall = HostFirewallSnapshot.take()
        self.nft_tables = set(sh("nft", "list", "tables", check=False).stdout.split("\n"))
        self.bridges: list[str] = []
        self.dirs: list[Path] = []

    def tmpdir(self) -> Path:
        path = Path(tempfile.mkdtemp(prefix="pcxb-", dir="/tmp"))
        self.dirs.append(path)
        return path

    def _remove_tagged_iptables_rules(self) -> list[str]:
        """Rules the Go plugins tagged with this run's network names that a failed DEL left (and their chains)."""
        import shlex

        from tests.support.host_firewall import SHARED_CNI_CHAINS

        found: list[str] = []
        for tool in ("iptables", "ip6tables"):
            for table in ("nat", "filter"):
                listing = sh(tool, "-t", table, "-S", check=False).stdout.splitlines()
                ours = [line for line in listing if line.startswith("-A ") and f'\\"{NETWORK_PREFIX}' in line]
                for line in ours:
                    args = shlex.split(line)
                    sh(tool, "-t", table, "-D", *args[1:], check=False)
                    found.append(f"{tool} -t {table} {line} (removed)")
                    target = args[args.index("-j") + 1] if "-j" in args else ""
                    if target.startswith("CNI-") and target not in SHARED_CNI_CHAINS:  # a per-container chain
                        sh(tool, "-t", table, "-F", target, check=False)
                        sh(tool, "-t", table, "-X", target, check=False)
        return found

    def run(self) -> list[str]:
        """Remove what the benchmark made; return what could not be removed."""
        leftovers: list[str] = []
        for name in sorted(_our_netns):  # only ours: another run's pods may be using theirs
            sh("ip", "netns", "delete", name, check=False)
            _our_netns.discard(name)
        for bridge in self.bridges:
            sh("ip", "link", "delete", bridge, check=False)
        leftovers += self._remove_tagged_iptables_rules()
        leftovers += self.firewall.remove_new_shared_chains()
        # nft tables this run created (pycni's portmap, firewall and masquerade tables, iptables-nft's): removed
        # when they hold no rule and no set element; else someone else's attachments use them now, or ours
        # were left (said so when the rules name this run's networks)
        # portmap's table outlives a run (as the reference's does) but not this run's networks: GC drops them
        _gc_portmap_networks(sh("nft", "list", "table", "inet", "pycni-portmap", check=False).stdout)
        for table in sorted(set(sh("nft", "list", "tables", check=False).stdout.split("\n")) - self.nft_tables):
            parts = table.split()
            if len(parts) != 3:
                continue
            listing = sh("nft", "-j", "list", "table", parts[1], parts[2], check=False).stdout
            try:
                objects = json.loads(listing)["nftables"]
            except (ValueError, KeyError):
                continue
            in_use = any(("rule" in o and not _base_layout_rule(o["rule"]))
                         or o.get("set", o.get("map", {})).get("elem") for o in objects)
            if not in_use:
                sh("nft", "delete", "table", parts[1], parts[2], check=False)
            elif NETWORK_PREFIX in listing:
                leftovers.append(f"{table} (rules of this run's attachments still in it)")
        for directory in self.dirs:
            shutil.rmtree(directory, ignore_errors=True)
        links = sh("ip", "-o", "link", "show", check=False).stdout
        leftovers += [f"link {b}" for b in self.bridges if f": {b}:" in links or f": {b}@" in links]
        return leftovers
