"""cnitool-compatible subcommands: add, check, del, status, gc, version.

Same arguments and environment as Go's cnitool so people's habits carry
over: ``pycni add <net> <netns>`` with NETCONFPATH, CNI_PATH, CNI_IFNAME,
CNI_ARGS and CAP_ARGS. The container ID is derived from the netns path
exactly as cnitool derives it, so the two tools share cache entries.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Mapping
from typing import Any

from pycni.runtime import Attachment, CniConfig, RuntimeConf, load_network_conf
from pycni.spec.config import NetConfList
from pycni.spec.errors import InvalidConfig, InvalidEnvironment
from pycni.spec.result import dumps

DEFAULT_NETCONFPATH = "/etc/cni/net.d"
DEFAULT_CNI_PATH = "/opt/cni/bin"
DEFAULT_CACHE_DIR = "/var/lib/cni"


def container_id_for(netns: str) -> str:
    """cnitool's ID: 'cnitool-' + hex of the first 10 bytes of sha512(abs path)."""
    digest = hashlib.sha512(os.path.abspath(netns).encode()).hexdigest()
    return "cnitool-" + digest[:20]


def cmd_add(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    cni, netlist = _runtime(environ), _network(args.network, environ)
    result = cni.add_network_list(netlist, _runtime_conf(args, environ))
    sys.stdout.write(dumps(result.to_wire()).decode() + "\n")
    return 0


def cmd_check(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    cni, netlist = _runtime(environ), _network(args.network, environ)
    cni.check_network_list(netlist, _runtime_conf(args, environ))
    return 0


def cmd_del(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    cni, netlist = _runtime(environ), _network(args.network, environ)
    cni.del_network_list(netlist, _runtime_conf(args, environ))
    return 0


def cmd_status(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    cni, netlist = _runtime(environ), _network(args.network, environ)
    cni.get_status_network_list(netlist)
    return 0


def cmd_gc(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Attachments whose netns still exists stay; the rest are collected.

    cnitool passes no valid set at all (so it deletes every attachment);
    reading liveness off the cache is what an operator means by "gc".
    """
    cni, netlist = _runtime(environ), _network(args.network, environ)
    valid = [
        Attachment(a.container_id, a.ifname)
        for a in cni.get_cached_attachments()
        if a.network == netlist.name and netns_exists(a.netns)
    ]
    cni.gc_network_list(netlist, valid)
    return 0


def cmd_version(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from pycni import __version__
    from pycni.spec.version import SUPPORTED_VERSIONS

    if args.plugin:
        info = _runtime(environ).get_version_info(args.plugin)
        print(f"{args.plugin}: CNI spec versions {', '.join(info.supported_versions)}")
    else:
        print(f"pycni {__version__}, CNI spec versions {', '.join(SUPPORTED_VERSIONS)}")
    return 0


def netns_exists(path: str) -> bool:
    """True when ``path`` is a live network namespace (a file on nsfs)."""
    if not path:
        return False
    try:
        return os.stat(path).st_dev == os.stat("/proc/self/ns/net").st_dev
    except OSError:
        return False


def _runtime(environ: Mapping[str, str]) -> CniConfig:
    path = [p for p in environ.get("CNI_PATH", DEFAULT_CNI_PATH).split(os.pathsep) if p]
    return CniConfig(path, cache_dir=environ.get("CNI_CACHE_DIR", DEFAULT_CACHE_DIR))


def _network(name: str, environ: Mapping[str, str]) -> NetConfList:
    return load_network_conf(environ.get("NETCONFPATH", DEFAULT_NETCONFPATH), name)


def _runtime_conf(args: argparse.Namespace, environ: Mapping[str, str]) -> RuntimeConf:
    return RuntimeConf(
        container_id=container_id_for(args.netns),
        netns=args.netns,
        ifname=args.ifname or environ.get("CNI_IFNAME", "eth0"),
        args=_cni_args(environ.get("CNI_ARGS", "")),
        capability_args=_cap_args(environ.get("CAP_ARGS", "")),
    )


def _cni_args(text: str) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    for part in filter(None, text.split(";")):
        key, sep, value = part.partition("=")
        if not sep or not key or not value:
            raise InvalidEnvironment(f'CNI_ARGS: invalid pair "{part}": expected KEY=VALUE')
        pairs.append((key, value))
    return tuple(pairs)


def _cap_args(text: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidConfig(f"CAP_ARGS: not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidConfig("CAP_ARGS: must be a JSON object of capability name to value")
    return value
