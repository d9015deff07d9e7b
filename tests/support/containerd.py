"""A second real runtime for tests: Debian 12's containerd 1.6, driven by ``ctr run --cni``.

``Containerd(root, conflist, plugins_dir, env=None).setup()`` (the ``containerd``
fixture of tests/runtime_containerd) is a private containerd: its own
config, --root, --state and socket, a busybox image it built itself, and a
private mount namespace for everything it and ``ctr`` do. It never reads or
writes the host's /etc/cni/net.d, /opt/cni/bin, /var/lib/cni or
/run/containerd.

API (see ``Containerd`` below)::

    ctrd.ctr(*args, check=True)               -> CompletedProcess (``ctr`` in the private world)
    ctrd.run_attached(name, *cmd)             -> Popen of ``ctr run --cni --rm`` (CNI DEL when the task ends)
    ctrd.run_detached(name, *cmd)             ``ctr run -d --cni`` (no CNI DEL, ever)
    ctrd.wait_running(name) / ctrd.exec(name, *cmd) / ctrd.kill(name)
    ctrd.ip_of(name)                          the address host-local reserved for it
    ctrd.reserved_ips() / ctrd.full_id(name)  host-local's dataDir / the CNI container id ctr uses
    ctrd.close()                              (idempotent; returns what it could not remove)

Findings on this machine (Debian 12, containerd 1.6.20, runc 1.1.5, no systemd):

* ``ctr run --cni`` reads no containerd config for CNI: it calls go-cni with
  ``gocni.New(gocni.WithDefaultConf)``, so the plugins are always found in
  /opt/cni/bin and the network is the *first* file (by name) in
  /etc/cni/net.d; the CRI plugin's ``conf_dir``/``bin_dir`` apply only to
  the CRI plugin (disabled here). libcni then caches results in
  /var/lib/cni/results (no cache dir option either), and containerd's shims
  put their sockets in /run/containerd/s and runc's state in
  /run/containerd/runc whatever ``state`` says. So containerd and every
  ``ctr`` run inside one private mount namespace (``unshare --mount
  --propagation slave``, held by a ``sleep``, entered with ``nsenter``):
  our net.d and bin dirs are bind-mounted over /etc/cni/net.d and
  /opt/cni/bin, our cache over /var/lib/cni and a dir of ours over
  /run/containerd. Where the host lacks a mount point (no /opt/cni here),
  its nearest existing parent gets an overlay whose upper dir is ours, so
  the host's directory is neither hidden nor written.
* The netns ctr gives the plugins is ``/proc/<task pid>/ns/net``; the CNI
  container id is ``<namespace>-<container id>``; ifname eth0.
* Attached ``ctr run --cni`` runs CNI DEL when its task ends, with an
  *empty* CNI_NETNS (the task, and its namespace, are already gone), then
  deletes the task. A detached ``ctr run -d --cni`` returns after ADD and
  nothing ever runs DEL: ``ctr task kill/rm`` and ``ctr container rm`` know
  nothing of CNI, so the address stays reserved (and the result cached)
  until someone runs DEL for ``<namespace>-<id>`` by hand.
* The image: no registry, so ``setup`` writes an OCI layout tarball (one
  uncompressed layer: busybox-static and its applets) and ``ctr images
  import``s it, unpacked for the ``native`` snapshotter (overlayfs is not
  needed and needs nothing of the host).
* Each container's cgroup is ``/<namespace>/<id>`` (cgroupfs); the namespace
  is unique per environment and its cgroup dirs are removed at close.
* If pytest is killed, the namespace holder and containerd die with it
  (PR_SET_PDEATHSIG); containerd-shim and ``sleep`` tasks may stay, find
  them by the namespace name ``pycni-ctrd-*``.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import io
import json
import os
import platform
import select
import shutil
import signal
import subprocess
import tarfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.support.podman import BUSYBOX_APPLETS
from tests.support.podman_host import BUSYBOX, remove_cgroup

__all__ = ["IMAGE", "PRIVATE_PATHS", "Containerd", "bridge_conflist", "require_containerd"]

IMAGE = "localhost/pycni-busybox:latest"
REQUIRED_TOOLS = ("containerd", "ctr", "containerd-shim-runc-v2", "runc", "nsenter", "unshare", "mount")
#: Host paths ctr, libcni and containerd's shims use whatever the config says; each gets a private stand-in.
PRIVATE_PATHS = ("/etc/cni/net.d", "/opt/cni/bin", "/var/lib/cni", "/run/containerd")
#: The CRI plugin would load /etc/cni/net.d itself; "opt" would create /opt/containerd.
DISABLED_PLUGINS = ("io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt")


def require_containerd() -> None:
    """Skip (or, with PYCNI_REQUIRE_KERNEL_TESTS=1, fail) when this machine cannot run the environment."""
    reason = None
    if os.geteuid() != 0:
        reason = "needs root to run containerd"
    else:
        missing = [t for t in REQUIRED_TOOLS if not shutil.which(t)]
        if missing:
            reason = f"needs {missing} (Debian packages: containerd runc util-linux)"
        elif not os.path.exists(BUSYBOX):
            reason = f"needs {BUSYBOX} for the image (Debian package busybox-static)"
    if reason is None:
        return
    if os.environ.get("PYCNI_REQUIRE_KERNEL_TESTS") == "1":
        pytest.fail(f"containerd runtime test prerequisite missing: {reason}")
    pytest.skip(reason)


def _set_pdeathsig() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _mount_script(root: Path, binds: dict[str, Path]) -> str:
    """Shell lines that put each ``binds`` source over its host path, creating nothing on the host."""
    lines = ["set -e"]
    overlays: dict[str, list[str]] = {}
    for target in binds:
        if os.path.isdir(target):
            continue
        parent = target
        while not os.path.isdir(parent):
            parent = os.path.dirname(parent)
        if parent == "/":
            raise RuntimeError(f"cannot stand in for {target}: no parent directory to overlay")
        overlays.setdefault(parent, []).append(os.path.relpath(target, parent))
    for n, (parent, missing) in enumerate(sorted(overlays.items())):
        upper, work = root / "overlay" / str(n) / "upper", root / "overlay" / str(n) / "work"
        work.mkdir(parents=True)
        for relative in missing:
            (upper / relative).mkdir(parents=True)
        lines.append(f'mount -t overlay overlay -o "lowerdir={parent},upperdir={upper},workdir={work}" "{parent}"')
    lines += [f'mount --bind "{source}" "{target}"' for target, source in binds.items()]
    return "; ".join(lines) + "; echo ready; exec sleep infinity"


def _oci_image_tarball(rootfs: Path, name: str, out: Path) -> None:
    """An OCI image layout (one uncompressed layer of ``rootfs``) as ``ctr images import`` reads it."""
    layer_buf = io.BytesIO()
    with tarfile.open(fileobj=layer_buf, mode="w") as tar:
        tar.add(rootfs, arcname=".")
    layer = layer_buf.getvalue()
    layer_digest = "sha256:" + hashlib.sha256(layer).hexdigest()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    config = json.dumps({
        "architecture": arch, "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": "sha256:" + hashlib.sha256(config).hexdigest(), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest,
                    "size": len(layer)}],
    }).encode()
    index = json.dumps({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": "sha256:" + hashlib.sha256(manifest).hexdigest(), "size": len(manifest),
                       "annotations": {"io.containerd.image.name": name,
                                       "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1]}}],
    }).encode()
    with tarfile.open(out, "w") as tar:
        for path, data in (("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", index),
                           *((f"blobs/sha256/{hashlib.sha256(b).hexdigest()}", b) for b in (layer, config, manifest))):
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


class Containerd:
    """One private containerd world under ``root``; see the module docstring."""

    def __init__(self, root: Path, conflist: dict[str, Any], plugins_dir: Path,
                 env: dict[str, str] | None = None) -> None:
        self.root = root
        self.extra_env = dict(env or {})  # ctr's, so every plugin's too (e.g. PYCNI_EXECUTOR_SOCKET)
        self.token = uuid.uuid4().hex[:6]
        self.namespace = f"pycni-ctrd-{self.token}"
        self.conflist = conflist
        self.plugins_dir = plugins_dir
        self.net_d = root / "net.d"
        self.cache_dir = root / "var-lib-cni"
        self.run_containerd = root / "run-containerd"
        self.socket = root / "containerd.sock"
        self.data_dir = Path(conflist["plugins"][0]["ipam"]["dataDir"]) / conflist["name"]
        for d in (self.net_d, self.cache_dir, self.run_containerd):
            d.mkdir(parents=True, exist_ok=True)
        self.attached: dict[str, subprocess.Popen[str]] = {}
        self.executor: Any = None  # a test's RunningExecutor that the shims forward to, if any
        self._holder: subprocess.Popen[bytes] | None = None
        self._daemon: subprocess.Popen[bytes] | None = None
        self._closed = False

    # ---------------------------------------------------------------- setup

    def setup(self) -> Containerd:
        (self.net_d / "10-pycni.conflist").write_text(json.dumps(self.conflist, indent=2))
        self._write_config()
        self._start_holder()
        self._start_daemon()
        self._import_image()
        return self

    def _write_config(self) -> None:
        (self.root / "config.toml").write_text(f"""\
version = 2
root = {json.dumps(str(self.root / "root"))}
state = {json.dumps(str(self.root / "state"))}
disabled_plugins = {json.dumps(list(DISABLED_PLUGINS))}

[grpc]
  address = {json.dumps(str(self.socket))}

[ttrpc]
  address = {json.dumps(str(self.root / "containerd.ttrpc.sock"))}

[debug]
  address = ""
""")

    def _start_holder(self) -> None:
        binds = dict(zip(PRIVATE_PATHS, (self.net_d, self.plugins_dir, self.cache_dir, self.run_containerd),
                         strict=True))
        self._holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "slave", "--", "sh", "-c", _mount_script(self.root, binds)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_set_pdeathsig,
        )
        assert self._holder.stdout is not None
        ready, _, _ = select.select([self._holder.stdout], [], [], 10)
        if not ready or self._holder.stdout.readline().strip() != b"ready":
            self._holder.kill()
            _, err = self._holder.communicate(timeout=10)
            raise RuntimeError(f"could not set up the private mount namespace: {err.decode() or 'timeout'}")

    def _in_namespace(self, *cmd: str) -> list[str]:
        assert self._holder is not None
        return ["nsenter", f"--mount=/proc/{self._holder.pid}/ns/mnt", "--", *cmd]

    def _env(self) -> dict[str, str]:
        return {**os.environ, "CONTAINERD_ADDRESS": str(self.socket), "CONTAINERD_NAMESPACE": self.namespace,
                "CONTAINERD_SNAPSHOTTER": "native", **self.extra_env}

    def _start_daemon(self) -> None:
        with open(self.root / "containerd.log", "ab") as log:
            self._daemon = subprocess.Popen(
                self._in_namespace("containerd", "--config", str(self.root / "config.toml")),
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=_set_pdeathsig,
            )
        deadline = time.monotonic() + 60
        while self.ctr("version", check=False).returncode != 0:
            if self._daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"containerd did not start: {self.log_tail()}")
            time.sleep(0.2)

    def _import_image(self) -> None:
        rootfs = self.root / "rootfs"
        for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "root", "run"):
            (rootfs / d).mkdir(parents=True, exist_ok=True)
        shutil.copy2(BUSYBOX, rootfs / "bin/busybox")
        for applet in BUSYBOX_APPLETS:
            (rootfs / "bin" / applet).symlink_to("busybox")
        (rootfs / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
        (rootfs / "etc/group").write_text("root:x:0:\n")
        tarball = self.root / "busybox-oci.tar"
        _oci_image_tarball(rootfs, IMAGE, tarball)
        self.ctr("images", "import", "--snapshotter", "native", str(tarball))

    def log_tail(self, lines: int = 20) -> str:
        path = self.root / "containerd.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    # ---------------------------------------------------------------- ctr

    def ctr(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``ctr *args`` in the private world (its mount namespace, socket and containerd namespace)."""
        proc = subprocess.run(self._in_namespace("ctr", *args), capture_output=True, text=True, env=self._env(),
                              timeout=timeout, check=False, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"ctr {' '.join(args)} exited {proc.returncode}\n"
                                 f"stdout: {proc.stdout}\nstderr: {proc.stderr}\ncontainerd: {self.log_tail()}")
        return proc

    def in_namespace(self, *cmd: str) -> subprocess.CompletedProcess[str]:
        """Any command in the private mount namespace (to see what ctr and the plugins see)."""
        return subprocess.run(self._in_namespace(*cmd), capture_output=True, text=True, timeout=60, check=True)

    def full_id(self, name: str) -> str:
        """The CNI container id ctr gives a container's attachment."""
        return f"{self.namespace}-{name}"

    def run_attached(self, name: str, *cmd: str) -> subprocess.Popen[str]:
        """``ctr run --cni --rm IMAGE name cmd`` in the background: CNI ADD now, DEL when the task ends."""
        proc = subprocess.Popen(self._in_namespace("ctr", "run", "--cni", "--rm", IMAGE, name, *cmd),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=self._env(), preexec_fn=_set_pdeathsig)
        self.attached[name] = proc
        return proc

    def run_detached(self, name: str, *cmd: str) -> None:
        """``ctr run -d --cni IMAGE name cmd``: returns after ADD; nothing will run DEL."""
        self.ctr("run", "-d", "--cni", IMAGE, name, *cmd)

    def wait_running(self, name: str, timeout: float = 60) -> None:
        """Until ``name``'s task runs with its address reserved (ctr starts the task after ADD)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.attached.get(name)
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"ctr run {name} exited {proc.returncode}: {proc.communicate()}")
            tasks = self.ctr("tasks", "ls", check=False).stdout.split("\n")[1:]
            if any(t.split()[:1] == [name] and "RUNNING" in t for t in tasks) and self.ip_of(name):
                return
            time.sleep(0.2)
        raise AssertionError(f"{name} not running within {timeout}s; containerd: {self.log_tail()}")

    def exec(self, name: str, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.ctr("tasks", "exec", "--exec-id", f"x{uuid.uuid4().hex[:8]}", name, *cmd, check=False,
                        timeout=timeout)

    def kill(self, name: str) -> None:
        self.ctr("tasks", "kill", "--signal", "SIGKILL", name, check=False)

    def remove(self, name: str) -> None:
        """Kill, then delete the task and the container the ctr way (ctr's own commands know no CNI)."""
        self.kill(name)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            gone = self.ctr("tasks", "delete", name, check=False)
            if gone.returncode == 0 or "not found" in gone.stderr:
                break
            time.sleep(0.2)  # still stopping
        self.ctr("containers", "delete", name, check=False)

    def wait_attached(self, name: str, timeout: float = 60) -> int:
        """The exit status of ``name``'s ``ctr run`` (it ends after its task, and after CNI DEL)."""
        return self.attached[name].wait(timeout=timeout)

    def ip_of(self, name: str) -> str:
        """The address host-local reserved for ``name`` ("" if none): its file holds the container id."""
        for ip in self.reserved_ips():
            with contextlib.suppress(OSError):
                if (self.data_dir / ip).read_text().splitlines()[0].strip() == self.full_id(name):
                    return ip
        return ""

    def reserved_ips(self) -> list[str]:
        if not self.data_dir.is_dir():
            return []
        return sorted(p.name for p in self.data_dir.iterdir() if p.name[0].isdigit() or ":" in p.name)

    # ---------------------------------------------------------------- teardown

    def close(self) -> list[str]:
        """Remove every container, the daemon and the namespace. Returns what could not be removed."""
        if self._closed:
            return []
        self._closed = True
        problems: list[str] = []
        if self._daemon is not None and self._daemon.poll() is None:
            # Attached runs first: killing their task lets each ctr run DEL and remove its container.
            for name, proc in self.attached.items():
                if proc.poll() is None:
                    self.kill(name)
                try:
                    proc.communicate(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate(timeout=10)
                    problems.append(f"ctr run {name} did not end")
            for name in self.ctr("containers", "ls", "-q", check=False).stdout.split():
                self.remove(name)
            self._daemon.terminate()
            try:
                self._daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._daemon.kill()
                self._daemon.wait(timeout=10)
                problems.append("containerd did not stop on SIGTERM")
        if self._holder is not None:
            if self._holder.poll() is None:
                self._holder.kill()
                self._holder.wait(timeout=10)
            for pipe in (self._holder.stdout, self._holder.stderr):
                if pipe is not None:
                    pipe.close()
        problems += remove_cgroup(self.namespace)
        return problems


def bridge_conflist(name: str, bridge: str, subnet: str, data_dir: Path, types: Sequence[str] = ()) -> dict[str, Any]:
    """The network ctr will use: pycni's bridge with host-local (own dataDir), then ``types`` plugins."""
    return {
        "cniVersion": "1.0.0", "name": name,
        "plugins": [
            {"type": "bridge", "bridge": bridge, "isGateway": True,
             "ipam": {"type": "host-local", "subnet": subnet, "dataDir": str(data_dir),
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            *({"type": t} for t in types),
        ],
    }
