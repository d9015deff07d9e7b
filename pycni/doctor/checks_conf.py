"""Checks of what a runtime reads before any plugin runs: the conf dir and the plugin binaries. Pure.

Each check is ``Snapshot -> CheckResult``; a check whose input was not
collected says ``skip`` with why.
"""

from __future__ import annotations

import os

from pycni.doctor.result import CheckResult, fail, passed, skip, warn
from pycni.doctor.snapshot import Snapshot

__all__ = ["conf_missing", "plugin_missing", "plugin_not_exec", "version_skew"]


def _agent_fix(snap: Snapshot) -> str:
    o = snap.options
    return (f"start the agent, which writes {o.expected_conflist}: pycni agent --node-name {o.node_name} "
            f"--cni-conf-dir {o.conf_dir} --run-dir {o.run_dir} ...")


def conf_missing(snap: Snapshot) -> CheckResult:
    cid = "conf-missing"
    o = snap.options
    if snap.conf is None:
        return skip(cid, f"cannot read {o.conf_dir}: {snap.errors.get('conf', 'unknown error')}")
    if not snap.conf:
        return fail(cid, f"no network config in {o.conf_dir} (runtimes say 'cni plugin not initialized')",
                    [f"{o.conf_dir}: no *.conf, *.conflist or *.json file"], _agent_fix(snap))
    invalid = [f"{c.name}: {c.error}" for c in snap.conf if c.error is not None]
    winner = snap.winner
    if winner is None:
        return fail(cid, f"no valid network config in {o.conf_dir}", invalid,
                    f"fix or remove the invalid files; {_agent_fix(snap)}")
    names = [c.name for c in snap.conf]
    if o.expected_conflist not in names:
        return fail(cid, f"the agent's {o.expected_conflist} is not in {o.conf_dir}; runtimes use {winner.name}",
                    [f"files: {', '.join(names)}"], _agent_fix(snap))
    first = snap.conf[0]
    if first.name != o.expected_conflist:
        return fail(cid, f"stray file {first.name} sorts before {o.expected_conflist}: runtimes that load only "
                    "the first config (containerd, CRI-O) use it",
                    [f"files in read order: {', '.join(names)}", *invalid],
                    f"rm {os.path.join(o.conf_dir, first.name)}")
    if invalid:
        return warn(cid, f"{winner.name} is used; other files do not parse", invalid,
                    "fix or remove the invalid files")
    return passed(cid, f"{winner.name} (network {winner.network}) is the config runtimes use",
                  [f"files: {', '.join(names)}"])


def _install_fix(snap: Snapshot, types: list[str]) -> str:
    return f"pycni install --bin-dir {snap.options.bin_dirs[0]} {' '.join(types)}"


def plugin_missing(snap: Snapshot) -> CheckResult:
    cid = "plugin-missing"
    winner = snap.winner
    if winner is None:
        return skip(cid, "no config to read plugin types from (see conf-missing)")
    missing = [t for t in winner.types if (snap.plugins.get(t) is None or snap.plugins[t].path is None)]
    path = " ".join(snap.options.bin_dirs)
    if missing:
        return fail(cid, f"{winner.name} needs plugins that are not installed: {', '.join(missing)}",
                    [f'failed to find plugin "{t}" in path [{path}]' for t in missing], _install_fix(snap, missing))
    return passed(cid, f"every plugin of {winner.name} is in [{path}]: {', '.join(winner.types)}")


def plugin_not_exec(snap: Snapshot) -> CheckResult:
    cid = "plugin-not-exec"
    winner = snap.winner
    if winner is None:
        return skip(cid, "no config to read plugin types from (see conf-missing)")
    problems: list[str] = []
    broken: list[str] = []
    for t in winner.types:
        plugin = snap.plugins.get(t)
        if plugin is None or plugin.path is None:
            continue
        if not plugin.regular:
            problems.append(f"{plugin.path}: not a regular file")
        elif not plugin.executable:
            problems.append(f"{plugin.path}: not executable (mode or a noexec mount)")
        elif plugin.foreign_arch:
            problems.append(f"{plugin.path}: built for {plugin.foreign_arch} (runtimes see 'exec format error')")
        elif not plugin.interpreter_ok:
            problems.append(f"{plugin.path}: its interpreter {plugin.interpreter} does not exist "
                            "(runtimes see 'no such file or directory')")
        else:
            continue
        broken.append(t)
    if problems:
        first = snap.plugins[broken[0]]
        fix = (f"chmod 755 {first.path}" if first.regular and not first.executable
               else _install_fix(snap, broken) + " --force")
        return fail(cid, f"plugins that cannot be executed: {', '.join(broken)}", problems, fix)
    return passed(cid, "every plugin of the config is executable")


def version_skew(snap: Snapshot) -> CheckResult:
    cid = "version-skew"
    winner = snap.winner
    if winner is None:
        return skip(cid, "no config (see conf-missing)")
    if not winner.cni_version:
        return fail(cid, f"{winner.name} has no cniVersion (DEL fails: 'invalid version \"\": the version is "
                    "empty')", [], f"add \"cniVersion\": \"1.0.0\" to {winner.name}")
    skewed, unknown = [], []
    for t in winner.types:
        plugin = snap.plugins.get(t)
        if plugin is None or plugin.path is None:
            continue
        if plugin.versions is None:
            if plugin.version_error:
                unknown.append(f"{t}: VERSION failed: {plugin.version_error}")
            continue
        if winner.cni_version not in plugin.versions:
            skewed.append(f'{t}: incompatible CNI versions; config is "{winner.cni_version}", plugin supports '
                          f"[{' '.join(plugin.versions)}]")
    if skewed:
        return fail(cid, f"plugins do not speak cniVersion {winner.cni_version} of {winner.name}", skewed,
                    "set \"cniVersion\" to a version every plugin supports, or upgrade the plugins")
    if unknown:
        return warn(cid, "could not ask every plugin for its versions", unknown)
    return passed(cid, f"every plugin speaks cniVersion {winner.cni_version}")
