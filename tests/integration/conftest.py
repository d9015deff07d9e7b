"""Fixtures for tests that need root and a real kernel.

Every kernel object gets a unique name and is removed at teardown, even
when the test fails. Configs, the result cache and IPAM data live in the
test's tmp_path, never in /etc/cni/net.d, /opt/cni/bin or /var/lib/cni.

Without root (or without Debian's reference plugins) the tests skip; in CI
``PYCNI_REQUIRE_KERNEL_TESTS=1`` turns those skips into failures so a broken
setup cannot pass silently.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

GO_PLUGIN_DIR = "/usr/lib/cni"
REPO_ROOT = Path(__file__).resolve().parents[2]


def _missing_prerequisite() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if not shutil.which("ip"):
        return "needs iproute2 ('ip')"
    if not os.path.exists(f"{GO_PLUGIN_DIR}/bridge"):
        return f"needs Debian's containernetworking-plugins in {GO_PLUGIN_DIR}"
    return None


@pytest.fixture(autouse=True)
def _kernel_prerequisites() -> None:
    reason = _missing_prerequisite()
    if reason is None:
        return
    if os.environ.get("PYCNI_REQUIRE_KERNEL_TESTS") == "1":
        pytest.fail(f"kernel test prerequisite missing: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session", autouse=True)
def _pycni_executor() -> Iterator[None]:
    """PYCNI_TEST_EXECUTOR=1: every pycni plugin call of the run goes through one warm executor.

    One executor per test process on a private socket: shims the labs install
    carry that socket, and PYCNI_EXECUTOR_SOCKET is exported for whatever execs
    them. The executor must survive the whole run.
    """
    if os.environ.get("PYCNI_TEST_EXECUTOR") != "1" or _missing_prerequisite() is not None:
        yield
        return
    from tests.executor.running import start_executor

    executor = start_executor()
    os.environ["PYCNI_EXECUTOR_SOCKET"] = str(executor.socket)
    try:
        yield
    finally:
        os.environ.pop("PYCNI_EXECUTOR_SOCKET", None)
        alive = executor.alive()
        executor.stop()
    assert alive, f"the executor died during the run: {executor.stderr()}"


def run(
    *cmd: str, netns: str | None = None, check: bool = True, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run a command, optionally inside a named netns."""
    full = ["ip", "netns", "exec", netns, *cmd] if netns else list(cmd)
    return subprocess.run(full, capture_output=True, text=True, check=check, timeout=timeout)


def ip_json(*args: str, netns: str | None = None) -> Any:
    out = run("ip", "-j", *args, netns=netns).stdout
    return json.loads(out) if out.strip() else []


def link_exists(name: str, netns: str | None = None) -> bool:
    return run("ip", "link", "show", "dev", name, netns=netns, check=False).returncode == 0


def ping(target: str, netns: str, count: int = 1) -> bool:
    return run("ping", "-c", str(count), "-W", "2", target, netns=netns, check=False).returncode == 0


@dataclass
class Netns:
    name: str

    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"


@pytest.fixture
def make_netns() -> Iterator[Any]:
    """Factory for fresh named network namespaces, deleted at teardown."""
    made: list[Netns] = []

    def make() -> Netns:
        ns = Netns(f"pycni-t-{uuid.uuid4().hex[:10]}")
        run("ip", "netns", "add", ns.name)
        made.append(ns)
        run("ip", "link", "set", "lo", "up", netns=ns.name)
        return ns

    yield make
    for ns in made:
        run("ip", "netns", "delete", ns.name, check=False)


@dataclass
class CniLab:
    """One isolated CNI world: conf dir, cache dir, IPAM dir, unique bridge and subnets."""

    root: Path
    bridge: str
    subnet4: str
    gateway4: str
    subnet6: str
    conf_dir: Path = field(init=False)
    cache_dir: Path = field(init=False)
    ipam_dir: Path = field(init=False)
    bin_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.conf_dir = self.root / "net.d"
        self.cache_dir = self.root / "cache"
        self.ipam_dir = self.root / "ipam"
        self.bin_dir = self.root / "bin"
        for d in (self.conf_dir, self.cache_dir, self.ipam_dir, self.bin_dir):
            d.mkdir(parents=True, exist_ok=True)

    @property
    def cni_path(self) -> list[str]:
        return [str(self.bin_dir), GO_PLUGIN_DIR]

    def bridge_plugin(self, *, ipv6: bool = False) -> dict[str, Any]:
        ranges = [[{"subnet": self.subnet4}]]
        routes = [{"dst": "0.0.0.0/0"}]
        if ipv6:
            ranges.append([{"subnet": self.subnet6}])
            routes.append({"dst": "::/0"})
        return {
            "type": "bridge",
            "bridge": self.bridge,
            "isGateway": True,
            "ipam": {"type": "host-local", "ranges": ranges, "routes": routes, "dataDir": str(self.ipam_dir)},
        }

    def write_conflist(self, name: str, plugins: list[dict[str, Any]], version: str = "1.0.0",
                       filename: str | None = None, **extra: Any) -> Path:
        doc = {"cniVersion": version, "name": name, **extra, "plugins": plugins}
        path = self.conf_dir / (filename or f"10-{name}.conflist")
        path.write_text(json.dumps(doc, indent=2))
        return path

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for running the `pycni` CLI against this lab."""
        env = dict(os.environ)
        env.update(
            NETCONFPATH=str(self.conf_dir),
            CNI_PATH=os.pathsep.join(self.cni_path),
            CNI_CACHE_DIR=str(self.cache_dir),
            PYTHONPATH=str(REPO_ROOT),
        )
        env.update(extra)
        return env

    def reserved_ips(self, network: str) -> list[str]:
        net_dir = self.ipam_dir / network
        if not net_dir.is_dir():
            return []
        return sorted(p.name for p in net_dir.iterdir() if p.name[0].isdigit() or ":" in p.name)

    def install_pycni(self, *plugin_types: str) -> None:
        """Install pycni's shims (all, or the named types) into bin_dir, ahead of the Go plugins on CNI_PATH."""
        import argparse

        from pycni.cli.install import cmd_install

        cmd_install(argparse.Namespace(bin_dir=str(self.bin_dir), plugins=list(plugin_types), force=False,
                                       executor_socket=os.environ.get("PYCNI_EXECUTOR_SOCKET")), {})

    def install_python_plugin(self, plugin_type: str, script: Path) -> None:
        """Put a pycni.skel plugin script on CNI_PATH as an executable."""
        wrapper = self.bin_dir / plugin_type
        wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{REPO_ROOT}" exec "{sys.executable}" "{script}" "$@"\n')
        wrapper.chmod(0o755)


def free_subnet4(rng: random.Random | None = None) -> ipaddress.IPv4Network:
    """A random 10.x.y.0/24 (x in 20..250) that overlaps no address or route on the host.

    Random rather than counted: several test runs (xdist workers, other
    checkouts) share this kernel, and two bridges with one gateway address
    break both labs.
    """
    rng = rng or random.Random(os.urandom(8))
    used = [
        ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}").network
        for link in ip_json("addr", "show")
        for a in link.get("addr_info", [])
    ]
    used += [ipaddress.ip_network(r["dst"]) for r in ip_json("-4", "route", "show") if r["dst"] != "default"]
    for _ in range(200):
        candidate = ipaddress.IPv4Network(f"10.{rng.randint(20, 250)}.{rng.randint(0, 255)}.0/24")
        if not any(candidate.overlaps(u) for u in used if u.version == 4):
            return candidate
    raise RuntimeError("no free 10.x.y.0/24 on this host")


def use_free_subnets(lab: CniLab) -> CniLab:
    """Give ``lab`` a random free 10.x.y.0/24 and a random ULA /64 (RFC 4193)."""
    rng = random.Random(os.urandom(8))
    net4 = free_subnet4(rng)
    lab.subnet4, lab.gateway4 = str(net4), str(net4[1])
    lab.subnet6 = str(ipaddress.IPv6Network(((0xFD << 120) | (rng.getrandbits(40) << 80), 64)))
    return lab


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[CniLab]:
    lab = use_free_subnets(
        CniLab(root=tmp_path, bridge=f"pcb{uuid.uuid4().hex[:6]}", subnet4="", gateway4="", subnet6="")
    )
    yield lab
    # The bridge plugin never deletes the bridge (by design); the test does.
    run("ip", "link", "delete", lab.bridge, check=False)
