"""A real container runtime for tests: Debian 12's podman with its CNI backend.

``Podman(root, plugin_dirs).setup()`` (the ``podman`` and ``make_podman``
fixtures of tests/runtime_podman) is a completely private podman: its own
containers.conf, storage, registries, policy, network config dir, CNI
cache, host-local data, netns dir and runc state, all inside a tmp dir. It
never reads or writes the host's /etc/containers, /var/lib/containers,
/etc/cni/net.d, /opt/cni/bin, /var/lib/cni or /run/netns.

API (see ``Podman`` below)::

    podman.run(*args, check=True)        -> CompletedProcess (the podman CLI, private env)
    podman.network_create(name=None, subnet=None, plugins=None) -> PodmanNetwork
        (.name .subnet .gateway .bridge .conflist .podman_conflist .data_dir .reserved_ips())
    podman.network_remove(name)
    podman.start(name, network, *run_args, command=("sleep", "3600")) -> container id
    podman.ip_of(name, network=None)     -> "10.x.y.z"
    podman.exec(name, *cmd, check=False) -> CompletedProcess
    podman.rm(*names)                     (podman rm -f -t 0: CNI DEL runs here)
    podman.inspect(name) -> dict, podman.cache_dir (the private /var/lib/cni)
    podman.close()                        (idempotent; the fixture calls it)

Which CNI plugins podman runs: the ``podman_plugin_dirs`` fixture (a list,
default ``[/usr/lib/cni]``, Debian's Go plugins). Override that fixture in a
test module, parametrize ``podman`` indirectly with a list of dirs, or call
``make_podman(plugin_dirs)`` for a second, independent environment. Podman
has one plugin search path per engine (containers.conf ``cni_plugin_dirs``,
searched in order, like CNI_PATH), not one per network: a network that
should use pycni's bridge + host-local but Go's portmap/firewall/tuning
uses ``[pycni_dir, "/usr/lib/cni"]``, or drops plugins from the chain with
``network_create(plugins=("bridge",))``. ``make_podman(dirs, env={...})`` adds
to podman's environment, which libcni hands on to every plugin (and conmon
to ``podman container cleanup``): e.g. PYTHONPATH for pycni's plugins.

Findings on this machine (Debian 12, podman 4.3.1, runc 1.1.5, conmon 2.1.6,
containers-common 0.50, kernel 6.18 in a VM, cgroup v1 hybrid, no systemd):

* ``network_backend = "cni"`` works in podman 4.3 (``podman info`` shows
  networkBackend: cni). netavark is not installed anyway.
* ulimits: the VM gives every process a hard RLIMIT_NOFILE of 20000 and no
  CAP_SYS_RESOURCE in any capability set, so nobody can raise a hard limit.
  Podman's default for root is nofile=1048576 and runc then dies with
  "error setting rlimits for ready process: error setting rlimit type 7:
  operation not permitted". Podman also lowers its own RLIMIT_NPROC to 32768,
  so nproc must be <= 32768 ("rlimit type 6", even nproc=96364, the shell's
  hard limit, fails). ``--ulimit host`` fails too. We put
  ``default_ulimits`` (nofile = our hard limit, nproc = min(hard, 32768)) in
  containers.conf, so every ``podman run``, also ones a test writes by hand,
  works without ``--ulimit``.
* With CONTAINERS_CONF set, containers-common reads only that file (not
  /usr/share/containers/containers.conf nor /etc/containers/...). We copy
  Debian's default_capabilities and default_sysctls
  (net.ipv4.ping_group_range=0 0) and add NET_RAW: Debian's list drops it,
  and busybox's ping only uses raw sockets ("ping: permission denied (are
  you root?)" without it; podman's compiled-in default list has it).
* The CNI cache dir is hard-coded: containers-common 0.50 builds libcni with
  ``libcni.NewCNIConfig(dirs, exec)`` (no cacheDir) and RuntimeConf.CacheDir
  is empty, so results land in /var/lib/cni/results/<net>-<ctrid>-<ifname>.
  The conflist podman writes has no host-local ``dataDir`` (reservations
  in /var/lib/cni/networks/<net>/) and there is no option for either.
  Podman (as root) also writes /var/lib/containers/cache/
  blob-info-cache-v1.boltdb whatever graphroot says, bind-mounts each
  container's netns at /run/netns/netns-<uuid>, and runc keeps state in
  /run/runc. So every podman process runs inside a private mount namespace
  (``unshare --mount --propagation slave``, kept by one ``sleep`` process we
  start, entered with ``nsenter --mount``), where <tmp>/varlib is bind-mounted
  on /var/lib, <tmp>/netns on /run/netns and <tmp>/etc-containers on
  /etc/containers. conmon and ``podman container cleanup`` (conmon's exit
  command) inherit that namespace and the CONTAINERS_* environment. Slave
  propagation: host unmounts still reach us, our mounts never reach the host.
  The host therefore sees no netns, no /var/lib/cni and no /run/runc entry.
* runc's state dir: containers.conf has no runtime_flags, and podman execs
  runc directly for kill/delete/state, so ``[engine.runtimes] runc`` points at
  a wrapper script that adds ``--root <tmp>/runc``.
* ``podman import`` copies through /var/tmp unless ``image_copy_tmp_dir`` is
  set; it also needs a signature policy (ours: insecureAcceptAnything).
* lock_type = "file" keeps podman's locks in tmp_dir (the default "shm" makes
  /dev/shm/libpod_lock, shared with the host's podman).
* cgroupfs + cgroup v1: every container gets <parent>/libpod-<id> and conmon
  goes to <parent>/conmon in each hierarchy; with the default parent
  (libpod_parent) those two dirs stay forever. ``start`` passes a unique
  ``--cgroup-parent`` and teardown rmdirs it (and libpod_parent if it was
  not there before and is empty).
* ``podman rm -f`` waits 10 s for SIGTERM (``sleep`` as PID 1 ignores it):
  always ``-t 0``.
* ``podman network create`` (CNI) writes <network_config_dir>/<name>.conflist
  plus a cni.lock there. It picks the bridge name ``cni-podmanN``, the first N
  unused by its own configs and by host links *at create time* -- two
  private podmans running in parallel would both pick cni-podman1 and share
  a bridge. 4.3 has no ``--interface-name``, so we rewrite "bridge" in the
  conflist to a unique name after creation (podman re-reads the dir on every
  command). ``--disable-dns`` always: otherwise podman appends a "dnsname"
  plugin whenever one is found in cni_plugin_dirs.
* Every podman command that touches networks loads *every* conflist in the
  dir and validates it with libcni (finds each plugin binary and execs it
  with CNI_COMMAND=VERSION); a conflist whose plugin is missing is skipped
  with only a warning, and then "network not found".
* ``podman network rm`` deletes the bridge (the bridge plugin never does).
* Left on the host by the plugins in podman's chain: the firewall plugin
  creates CNI-FORWARD and CNI-ADMIN in iptables' filter table plus a FORWARD
  rule jumping to CNI-FORWARD, and (iptables-nft) the nft tables "ip filter"
  and "ip nat"; the reference never removes them. Teardown removes them if
  they did not exist when the environment started and now hold no
  per-container rule (same for portmap's CNI-HOSTPORT-* chains). A parallel
  test that starts using them in the same instant could lose them (they are
  re-created on its next ADD). The bridge plugin (isGateway) sets
  net.ipv4.ip_forward=1; it is not reset (other tests may rely on it). The
  Go tuning plugin keeps its state in /run/cni/tuning/<ctrid>-<ifname>
  (hard-coded, outside our private mounts); the file goes at DEL, the
  directory stays. conmon double-forks, so it is reparented to PID 1; once
  ``podman rm`` ends it, it is a zombie until PID 1 reaps it (this VM's init
  does so within seconds).
* Installing Debian's podman also drops /etc/cni/net.d/87-podman-bridge.conflist
  (a "podman" network, bridge cni-podman0, 10.88.0.0/16) on the host and
  enables podman.socket/podman.service where systemd runs (there is none
  here). This fixture never reads that file; anything that lists the host's
  /etc/cni/net.d will see it.
* If pytest is killed, the namespace holder dies with it (PR_SET_PDEATHSIG),
  but running containers (conmon + ``sleep``), their bridge and veths stay;
  find them by the bridge prefix ``pcpm`` and the cgroup ``/pycni-podman-*``.

The exact conflist podman 4.3 writes for
``podman network create --disable-dns --subnet 10.231.7.0/24 pctest1``
(tests of the meta plugins reuse it; ``PodmanNetwork.podman_conflist`` has
the one of each network as podman wrote it, before we renamed the bridge)::

    {
       "cniVersion": "0.4.0",
       "name": "pctest1",
       "plugins": [
          {
             "type": "bridge",
             "bridge": "cni-podman1",
             "isGateway": true,
             "ipMasq": true,
             "hairpinMode": true,
             "ipam": {
                "type": "host-local",
                "routes": [{"dst": "0.0.0.0/0"}],
                "ranges": [[{"subnet": "10.231.7.0/24", "gateway": "10.231.7.1"}]]
             },
             "capabilities": {"ips": true}
          },
          {"type": "portmap", "capabilities": {"portMappings": true}},
          {"type": "firewall", "backend": ""},
          {"type": "tuning"}
       ]
    }

Podman calls the chain with CNI_ARGS "IgnoreUnknown=1;K8S_POD_NAME=<container
name>", CNI_IFNAME eth0, CNI_NETNS /run/netns/netns-<uuid>, CNI_CONTAINERID
the full container id, and capability args only when used (portMappings,
ips). DEL uses the cached config from /var/lib/cni/results.
"""

from __future__ import annotations

import ctypes
import functools
import ipaddress
import itertools
import json
import os
import resource
import select
import shutil
import signal
import subprocess
import tarfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.host import link_exists, run
from tests.support.host_firewall import HostFirewallSnapshot
from tests.support.podman_host import BUSYBOX, cgroup_dirs, remove_cgroup
from tests.support.subnets import worker_subnet4

__all__ = ["GO_PLUGIN_DIR", "IMAGE", "Podman", "PodmanNetwork"]

sh = functools.partial(run, timeout=60)

GO_PLUGIN_DIR = "/usr/lib/cni"
IMAGE = "localhost/pycni-busybox:latest"
BUSYBOX_APPLETS = (
    "sh", "ash", "ping", "ip", "ifconfig", "route", "nc", "wget", "httpd", "sleep", "cat", "ls", "echo",
    "ps", "kill", "hostname", "netstat", "arp", "udhcpc", "nslookup", "true", "false", "test", "[", "grep",
    "sed", "awk", "head", "tail", "mkdir", "rm", "touch", "ln", "env", "id", "sysctl", "timeout", "traceroute",
)
# Debian's /usr/share/containers/containers.conf list (which CONTAINERS_CONF hides) plus NET_RAW:
# busybox ping only uses raw sockets, so ping_group_range alone is not enough.
DEFAULT_CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "NET_BIND_SERVICE", "NET_RAW",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
)
PODMAN_NPROC_CAP = 32768  # podman lowers its own RLIMIT_NPROC to this

# --------------------------------------------------------------------------- the environment

@dataclass
class PodmanNetwork:
    name: str
    subnet: str
    gateway: str
    bridge: str
    conflist_path: Path
    data_dir: Path  # host path of host-local's /var/lib/cni/networks/<name>
    podman_conflist: dict[str, Any]  # exactly what `podman network create` wrote
    conflist: dict[str, Any]  # what is on disk now (bridge renamed, plugins filtered)

    def reserved_ips(self) -> list[str]:
        if not self.data_dir.is_dir():
            return []
        return sorted(p.name for p in self.data_dir.iterdir() if p.name[0].isdigit() or ":" in p.name)


def _set_pdeathsig() -> None:
    """In the child: die with the parent, so a killed pytest leaves no namespace holder behind."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Podman:
    """One private podman world under ``root``; see the module docstring."""

    def __init__(self, root: Path, plugin_dirs: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.root = root
        self.plugin_dirs = [str(d) for d in plugin_dirs]
        self.extra_env = dict(env or {})
        self.token = uuid.uuid4().hex[:6]
        self.cgroup_parent = f"/pycni-podman-{self.token}"
        self.networks: dict[str, PodmanNetwork] = {}
        self.ulimits: dict[str, int] = {}  # what default_ulimits gives every container
        self.containers: set[str] = set()
        self._holder: subprocess.Popen[bytes] | None = None
        self._closed = False
        self._bridge_counter = itertools.count(1)
        self._had_libpod_parent = any(Path(d).is_dir() for d in cgroup_dirs("libpod_parent"))
        self.firewall_before = HostFirewallSnapshot.take()

        self.conf_dir = root / "conf"
        self.etc_containers = root / "etc-containers"  # bind-mounted on /etc/containers
        self.varlib = root / "varlib"  # bind-mounted on /var/lib
        self.cache_dir = self.varlib / "cni"  # what podman's libcni sees as /var/lib/cni
        self.netns_dir = root / "netns"  # bind-mounted on /run/netns
        self.net_d = root / "net.d"
        self.graphroot = root / "storage"
        self.runroot = root / "run"
        self.tmp_dir = root / "tmp"
        self.runc_root = root / "runc"
        self.bin_dir = root / "bin"
        for d in (self.conf_dir, self.etc_containers, self.cache_dir, self.netns_dir, self.net_d,
                  self.graphroot, self.runroot, self.tmp_dir, self.runc_root, self.bin_dir):
            d.mkdir(parents=True, exist_ok=True)

    # ---------------------------------------------------------------- setup

    def _write_configs(self) -> None:
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
        nofile = 1048576 if nofile == resource.RLIM_INFINITY else min(nofile, 1048576)
        nproc = PODMAN_NPROC_CAP if nproc == resource.RLIM_INFINITY else min(nproc, PODMAN_NPROC_CAP)
        self.ulimits = {"nofile": nofile, "nproc": nproc}

        runc = self.bin_dir / "runc"
        runc.write_text(f'#!/bin/sh\nexec {shutil.which("runc")} --root "{self.runc_root}" "$@"\n')
        runc.chmod(0o755)

        def toml_list(items: Sequence[str]) -> str:
            return "[" + ", ".join(json.dumps(i) for i in items) + "]"

        containers_conf = f"""\
[containers]
default_capabilities = {toml_list(DEFAULT_CAPABILITIES)}
default_sysctls = ["net.ipv4.ping_group_range=0 0"]
default_ulimits = {toml_list([f"nofile={nofile}:{nofile}", f"nproc={nproc}:{nproc}"])}

[network]
network_backend = "cni"
cni_plugin_dirs = {toml_list(self.plugin_dirs)}
network_config_dir = {json.dumps(str(self.net_d))}

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
lock_type = "file"
tmp_dir = {json.dumps(str(self.tmp_dir))}
static_dir = {json.dumps(str(self.graphroot / "libpod"))}
volume_path = {json.dumps(str(self.graphroot / "volumes"))}
image_copy_tmp_dir = {json.dumps(str(self.tmp_dir))}

[engine.runtimes]
runc = [{json.dumps(str(runc))}]
"""
        storage_conf = f"""\
[storage]
driver = "vfs"
graphroot = {json.dumps(str(self.graphroot))}
runroot = {json.dumps(str(self.runroot))}
"""
        policy = {"default": [{"type": "insecureAcceptAnything"}]}
        for d in (self.conf_dir, self.etc_containers):
            (d / "containers.conf").write_text(containers_conf)
            (d / "storage.conf").write_text(storage_conf)
            (d / "registries.conf").write_text("# no registries: this environment never pulls\n")
            (d / "policy.json").write_text(json.dumps(policy))

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            CONTAINERS_CONF=str(self.conf_dir / "containers.conf"),
            CONTAINERS_STORAGE_CONF=str(self.conf_dir / "storage.conf"),
            CONTAINERS_REGISTRIES_CONF=str(self.conf_dir / "registries.conf"),
            TMPDIR=str(self.tmp_dir),
        )
        env.update(self.extra_env)
        return env

    def _start_holder(self) -> None:
        # /run/netns must exist to be a mount point; it is the standard dir (iproute2 makes it too).
        Path("/run/netns").mkdir(exist_ok=True)
        mounts = [(self.varlib, "/var/lib"), (self.netns_dir, "/run/netns")]
        if Path("/etc/containers").is_dir():
            mounts.append((self.etc_containers, "/etc/containers"))
        script = "set -e; " + "".join(f'mount --bind "{src}" "{dst}"; ' for src, dst in mounts)
        script += "echo ready; exec sleep infinity"
        self._holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "slave", "--", "sh", "-c", script],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_set_pdeathsig,
        )
        assert self._holder.stdout is not None
        ready, _, _ = select.select([self._holder.stdout], [], [], 10)
        line = self._holder.stdout.readline() if ready else b""
        if line.strip() != b"ready":
            self._holder.kill()
            _, err_bytes = self._holder.communicate(timeout=10)
            self._stop_holder()
            err = err_bytes.decode()
            raise RuntimeError(f"could not set up the private mount namespace: {err or 'timeout'}")

    def _stop_holder(self) -> None:
        if self._holder is None:
            return
        if self._holder.poll() is None:
            self._holder.kill()
            self._holder.wait(timeout=10)
        for pipe in (self._holder.stdout, self._holder.stderr):
            if pipe is not None:
                pipe.close()

    def setup(self) -> Podman:
        self._write_configs()
        self._start_holder()
        self._import_busybox()
        return self

    def _import_busybox(self) -> None:
        rootfs = self.root / "rootfs"
        for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "root", "run", "var/www"):
            (rootfs / d).mkdir(parents=True, exist_ok=True)
        shutil.copy2(BUSYBOX, rootfs / "bin/busybox")
        for applet in BUSYBOX_APPLETS:
            (rootfs / "bin" / applet).symlink_to("busybox")
        (rootfs / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
        (rootfs / "etc/group").write_text("root:x:0:\nnogroup:x:65534:\n")
        tarball = self.root / "busybox-rootfs.tar"
        with tarfile.open(tarball, "w") as tar:
            tar.add(rootfs, arcname=".")
        self.run("import", "--change", 'CMD ["/bin/sh"]', str(tarball), IMAGE)

    # ---------------------------------------------------------------- the CLI

    def run(self, *args: str, check: bool = True, timeout: float = 120,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run `podman *args` in the private environment (mount namespace + CONTAINERS_* env)."""
        if self._holder is None or self._holder.poll() is not None:
            raise RuntimeError("the podman environment is not running (setup() not called, or closed)")
        cmd = ["nsenter", f"--mount=/proc/{self._holder.pid}/ns/mnt", "--", "podman", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=self._env(), cwd=self.root,
                              timeout=timeout, input=input, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"podman {' '.join(args)} exited {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}")
        return proc

    def network_create(self, name: str | None = None, subnet: str | None = None, *,
                       plugins: Sequence[str] | None = None, extra_args: Sequence[str] = ()) -> PodmanNetwork:
        """`podman network create --disable-dns --subnet S NAME`, then give the bridge a unique
        name (and keep only the plugin types in ``plugins``, in podman's order, if given)."""
        n = next(self._bridge_counter)
        name = name or f"pcnet-{self.token}-{n}"
        subnet = subnet or worker_subnet4()
        self.run("network", "create", "--disable-dns", "--subnet", subnet, *extra_args, name)
        path = self.net_d / f"{name}.conflist"
        written = json.loads(path.read_text())
        doc = json.loads(json.dumps(written))
        bridge = f"pcpm{self.token}{n}"
        for plugin in doc["plugins"]:
            if plugin.get("type") == "bridge":
                plugin["bridge"] = bridge
        if plugins is not None:
            doc["plugins"] = [p for p in doc["plugins"] if p.get("type") in plugins]
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=3))
        tmp.replace(path)
        gateway = str(ipaddress.ip_network(subnet)[1])
        net = PodmanNetwork(name, subnet, gateway, bridge, path, self.cache_dir / "networks" / name, written, doc)
        self.networks[name] = net
        return net

    def network_remove(self, name: str) -> None:
        self.run("network", "rm", "-f", name)
        net = self.networks.pop(name, None)
        if net is not None and link_exists(net.bridge):
            sh("ip", "link", "delete", net.bridge, check=False)

    def start(self, name: str, network: str, *run_args: str, command: Sequence[str] = ("sleep", "3600")) -> str:
        """A detached container on ``network``; returns its full id."""
        self.containers.add(name)
        out = self.run("run", "-d", "--name", name, "--network", network, "--cgroup-parent", self.cgroup_parent,
                       *run_args, IMAGE, *command).stdout
        return out.strip().splitlines()[-1]

    def inspect(self, name: str) -> dict[str, Any]:
        data: list[dict[str, Any]] = json.loads(self.run("container", "inspect", name).stdout)
        return data[0]

    def ip_of(self, name: str, network: str | None = None) -> str:
        nets = self.inspect(name)["NetworkSettings"]["Networks"]
        if network is None:
            if len(nets) != 1:
                raise ValueError(f"{name} is on {sorted(nets)}: say which network")
            network = next(iter(nets))
        ip: str = nets[network]["IPAddress"]
        return ip

    def exec(self, name: str, *cmd: str, check: bool = False, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.run("exec", name, *cmd, check=check, timeout=timeout)

    def rm(self, *names: str) -> None:
        """Remove containers now (no 10 s SIGTERM grace); this is where podman runs CNI DEL."""
        if names:
            self.run("rm", "-f", "-t", "0", *names)
            self.containers.difference_update(names)

    # ---------------------------------------------------------------- teardown

    def close(self) -> list[str]:
        """Remove everything this environment made. Returns what could not be removed."""
        if self._closed:
            return []
        self._closed = True
        problems: list[str] = []
        if self._holder is not None and self._holder.poll() is None:
            # Everything in this private world is ours: remove all of it, not just what we named.
            for args in (("pod", "rm", "-a", "-f", "-t", "0"), ("rm", "-a", "-f", "-t", "0")):
                proc = self.run(*args, check=False)
                if proc.returncode != 0:
                    problems.append(f"podman {' '.join(args)}: {proc.stderr.strip()}")
            listing = self.run("network", "ls", "--format", "{{.Name}}", check=False).stdout.split()
            for name in sorted(set(listing) | set(self.networks)):
                if name == "podman":
                    continue  # the default network exists only in memory, never used here
                proc = self.run("network", "rm", "-f", name, check=False)
                if proc.returncode != 0:
                    problems.append(f"podman network rm {name}: {proc.stderr.strip()}")
            leftovers = [p.name for p in self.netns_dir.iterdir()]
            if leftovers:
                problems.append(f"netns left in the private /run/netns: {leftovers}")
        self._stop_holder()
        for net in self.networks.values():
            if link_exists(net.bridge):
                sh("ip", "link", "delete", net.bridge, check=False)
        self.networks.clear()
        problems += remove_cgroup(self.cgroup_parent.strip("/"))
        if not self._had_libpod_parent:
            remove_cgroup("libpod_parent", quiet=True)
        problems += [f"left in place: {c}" for c in self.firewall_before.remove_new_shared_chains()]
        return problems
