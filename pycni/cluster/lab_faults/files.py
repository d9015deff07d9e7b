"""Faults in files: the node's conf dir, the lab's plugin dir, the node's IPAM dataDir and result cache.

Each ``<fault>(target) -> undo`` makes one fault; its heal puts back exactly
what ``undo`` records. The plugin faults change the lab's plugin directory,
which every node of the lab shares.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from ipaddress import IPv4Network
from typing import Any

from pycni.cluster.lab import NETWORK_NAME
from pycni.cluster.lab_faults.target import Target, Undo, remove_files, stash_move, stash_restore

VICTIM_PLUGIN = "portmap"  # in every node's conflist, after bridge: an ADD fails on it
STALE_SHIM = "loopback"  # installed in the lab but in no conflist: a stale shim breaks no pod


def _conflist(t: Target) -> str:
    from pycni.cluster.conflist import CONFLIST_NAME

    return t.path("net.d", CONFLIST_NAME)


def conf_missing(t: Target) -> Undo:
    conf_dir = t.path("net.d")
    return stash_move(t, conf_dir, sorted(os.listdir(conf_dir)))


def conf_stray(t: Target) -> Undo:
    """An earlier network's conflist left in the conf dir; runtimes take the first name, and it sorts first."""
    path = t.path("net.d", "00-cbr0.conflist")  # "00-c" < "00-p": before 00-pycni-cluster.conflist
    stray = {"cniVersion": "0.4.0", "name": "cbr0", "plugins": [{
        "type": "bridge", "bridge": "cbr0", "isGateway": True,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "172.30.0.0/24"}]], "dataDir": t.path("ipam")}}]}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(stray, f, indent=2)
    return {"remove": [path]}


def plugin_missing(t: Target) -> Undo:
    return stash_move(t, t.bin_dir, [VICTIM_PLUGIN])


def plugin_not_exec(t: Target) -> Undo:
    path = os.path.join(t.bin_dir, VICTIM_PLUGIN)
    mode = os.stat(path).st_mode & 0o7777
    os.chmod(path, mode & ~0o111)
    return {"path": path, "mode": mode}


def heal_mode(t: Target, undo: Undo) -> None:
    os.chmod(undo["path"], undo["mode"])


# An old plugin: it knows CNI up to 0.4.0 and answers a 1.0.0 config with the skel's own error.
OLD_PLUGIN = r"""#!/bin/sh
# pycni lab fault version-skew: an old TYPE that speaks CNI 0.1.0 to 0.4.0 only
if [ "$CNI_COMMAND" = VERSION ]; then
  echo '{"cniVersion": "0.4.0", "supportedVersions": ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0"]}'
  exit 0
fi
printf '{"cniVersion": "0.4.0", "code": 1, "msg": "incompatible CNI versions", %s}\n' \
  '"details": "config is \"1.0.0\", plugin supports [\"0.1.0\" \"0.2.0\" \"0.3.0\" \"0.3.1\" \"0.4.0\"]"'
exit 1
"""


def _replace_plugin(t: Target, plugin: str, content: str) -> Undo:
    undo = stash_move(t, t.bin_dir, [plugin])
    undo["remove"] = [os.path.join(t.bin_dir, plugin)]
    with open(undo["remove"][0], "w", encoding="utf-8") as f:
        f.write(content)
    os.chmod(undo["remove"][0], 0o755)
    return undo


def heal_replaced(t: Target, undo: Undo) -> None:
    remove_files(t, undo)
    stash_restore(t, undo)


def version_skew(t: Target) -> Undo:
    return _replace_plugin(t, VICTIM_PLUGIN, OLD_PLUGIN.replace("TYPE", VICTIM_PLUGIN))


def executor(t: Target) -> Undo:
    """A shim left by an older pycni install: its import root is not this pycni's."""
    from pycni.shimfile import python_shim

    return _replace_plugin(t, STALE_SHIM, python_shim(STALE_SHIM, sys.executable, ["/opt/pycni-0.1/lib"]))


def _edit_conflist(t: Target, edit: Callable[[dict[str, Any]], None]) -> Undo:
    path = _conflist(t)
    with open(path, encoding="utf-8") as f:
        original = f.read()
    doc = json.loads(original)
    edit(doc)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2)
    return {"path": path, "content": original}


def restore_file(t: Target, undo: Undo) -> None:
    with open(undo["path"], "w", encoding="utf-8") as f:
        f.write(undo["content"])


def cidr_mismatch(t: Target) -> Undo:
    """The conflist's range is another /24 of the cluster network than the node's lease."""
    cluster = IPv4Network(t.state.network)
    taken = {t.lab.node_subnet(n) for n in t.state.nodes}
    other = next(s for s in reversed(list(cluster.subnets(new_prefix=24))) if s not in taken)

    def edit(doc: dict[str, Any]) -> None:
        doc["plugins"][0]["ipam"]["ranges"] = [[{"subnet": str(other), "gateway": str(other[1])}]]

    return _edit_conflist(t, edit)


def _reserve(t: Target, ips: Sequence[str], cid_prefix: str) -> Undo:
    """host-local reservations (``<ip>`` holding ``<cid>\\r\\n<ifname>``) for containers that do not exist."""
    directory = t.path("ipam", NETWORK_NAME)
    os.makedirs(directory, exist_ok=True)
    made = []
    for i, ip in enumerate(ips):
        path = os.path.join(directory, ip)
        if os.path.exists(path):
            continue
        with open(path, "w", encoding="utf-8") as f:
            f.write(f"{cid_prefix}{i:04d}\r\neth0")
        made.append(path)
    return {"remove": made}


def ipam_exhausted(t: Target) -> Undo:
    subnet = t.subnet()
    return _reserve(t, [str(ip) for ip in list(subnet.hosts())[1:]], "labfault-exhausted-")  # .1 is the gateway


def ipam_leak(t: Target) -> Undo:
    subnet = t.subnet()
    return _reserve(t, [str(subnet.broadcast_address - n) for n in (3, 2, 1)], "labfault-leaked-")


def cache_corrupt(t: Target) -> Undo:
    """An empty cached result, as a crash during write leaves it (``DEL`` then fails on it)."""
    directory = t.path("cache", "results")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, f"{NETWORK_NAME}-labfault{os.urandom(4).hex()}-eth0")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8"):
        pass
    return {"remove": [path]}
