"""``pycni install`` / ``pycni uninstall``: plugin shims in a CNI bin dir.

Each installed file is a shim that forwards the call to the executor
daemon or runs the plugin in-process. By default (``--shim auto``) it is the
compiled C shim (``pycni.executor.cshim``): no Python start-up on a
forwarded call; its patched configuration area holds the plugin type, the
socket, the Python and pycni's import roots for the in-process fallback.
Where no C compiler works (or with ``--shim python``) it is a few lines of
Python started with ``-I -S`` (isolated, no site) that put the import roots
on sys.path and run ``pycni.executor.shim``. A marker (a line of the script,
the configuration area of the binary; ``pycni.shimfile``) identifies our
files, so install never clobbers a foreign binary without ``--force`` and
uninstall removes only ours.

This module only prints: the work is ``pycni.executor.install``.
``--executor`` also installs the systemd units of the executor (socket
activated) and enables the socket where systemd runs; elsewhere it says how
to start ``pycni executor --daemon``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

SYSTEMD_DIR = "/etc/systemd/system"


def cmd_install(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from pycni.executor.install import InstallError, install_plugins

    try:
        report = install_plugins(args.bin_dir, args.plugins, shim=getattr(args, "shim", None) or "auto",
                                 executor_socket=getattr(args, "executor_socket", None),
                                 force=getattr(args, "force", False))
    except InstallError as exc:
        raise SystemExit(f"pycni: {exc}") from None
    if report.no_c_shim:
        print(f"pycni: installing Python shims (slower start-up): cannot build the C shim: {report.no_c_shim}",
              file=sys.stderr)
    status = 0
    for shim in report.shims:
        if shim.action == "skipped":
            print(f"skipped {shim.path}: not installed by pycni (use --force to replace it)", file=sys.stderr)
            status = 1
            continue
        if shim.python_because:
            print(f"pycni: {shim.path} is a Python shim (slower start-up): {shim.python_because}", file=sys.stderr)
        print(f"{shim.action} {shim.path}")
    if getattr(args, "executor", False):
        status |= install_executor(getattr(args, "systemd_dir", None) or SYSTEMD_DIR,
                                   getattr(args, "executor_socket", None))
    return status


def install_executor(unit_dir: str, executor_socket: str | None = None) -> int:
    """Write the executor's systemd units; enable the socket when systemd runs and the dir is the system one."""
    from pycni.executor.install import write_file
    from pycni.executor.systemd import UNITS, render_unit

    os.makedirs(unit_dir, exist_ok=True)
    for name in UNITS:
        target = os.path.join(unit_dir, name)
        write_file(target, render_unit(name, [sys.executable, "-m", "pycni"], executor_socket), 0o644)
        print(f"installed {target}")
    systemd_runs = os.path.isdir("/run/systemd/system")
    if systemd_runs and os.path.abspath(unit_dir) == SYSTEMD_DIR:
        import subprocess

        for cmd in (["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", "pycni-executor.socket"]):
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                print(f"pycni: {' '.join(cmd)} failed: {proc.stderr.strip()}", file=sys.stderr)
                return 1
        print("enabled pycni-executor.socket (the executor starts on the first plugin call)")
    elif not systemd_runs:
        print("systemd is not running here: start the executor with 'pycni executor --daemon' "
              "(plugins run in-process until it listens)")
    else:
        print(f"units written to {unit_dir}; enable them with 'systemctl enable --now pycni-executor.socket'")
    return 0


def cmd_uninstall(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from pycni.executor.install import uninstall_plugins

    for path in uninstall_plugins(args.bin_dir):
        print(f"removed {path}")
    return 0
