"""The wireguard backend's commands: ``cluster init`` flags, and ``pycni node rotate-key NODE``.

``--listen-port``, ``--psk`` and ``--persistent-keepalive`` set the
Backend's ``ListenPort``, ``PSK`` and ``PersistentKeepaliveInterval``
(Flannel's names; validated with the rest by ``ClusterConfig.from_wire``).

``rotate-key`` gives a wireguard node a new key pair; its peers follow.

The command writes a rotation request into the node's lease
(``BackendData.RotateKey``, pycni.cluster.backends.wireguard_lease) and waits
until the node's agent has put a new private key in its device and published
the public key (the request is gone and ``PublicKey`` changed). Every peer's
agent then swaps the old key for the new one on its next converge; the old
key is removed everywhere. The private key never leaves the node.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pycni.cluster.kv import KV

__all__ = ["add_init_arguments", "add_rotate_parser", "backend_fields", "cmd_rotate_key", "rotate_key"]


class RotateError(Exception):
    pass


def add_init_arguments(init: argparse.ArgumentParser) -> None:
    g = init.add_argument_group("wireguard backend")
    g.add_argument("--listen-port", type=int, help="UDP port every node's WireGuard listens on (default 51820)")
    g.add_argument("--psk", metavar="BASE64", help="a cluster-wide pre-shared key (wg genpsk) mixed into handshakes")
    g.add_argument("--persistent-keepalive", type=int, metavar="SECONDS",
                   help="keepalive interval (default 0: off; 25 behind NAT)")


def backend_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The Backend fields the wireguard flags set."""
    out: dict[str, Any] = {}
    for flag, name in (("listen_port", "ListenPort"), ("psk", "PSK"),
                       ("persistent_keepalive", "PersistentKeepaliveInterval")):
        if getattr(args, flag, None) is not None:
            out[name] = getattr(args, flag)
    if out and args.backend != "wireguard":
        from pycni.spec.errors import InvalidConfig

        flag = next(iter(out))
        raise InvalidConfig(f"Backend.{flag}: only applies to the wireguard backend")
    return out


def add_rotate_parser(sub: Any, add_etcd_arguments: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser(
        "rotate-key",
        help="give a wireguard node a new key pair (its agent makes it; peers follow)",
        description="Ask NODE's agent for a new WireGuard key pair through its lease, and wait until it "
        "publishes the new public key. Peers replace the old key on their next converge.",
    )
    add_etcd_arguments(p)
    p.add_argument("name", help="node name")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the agent (default 30)")


def _lease(kv: KV, prefix: str, node: str) -> tuple[str, dict[str, object]]:
    from pycni.cluster.subnets import SubnetManager

    leases, _ = SubnetManager(kv, prefix).list_leases()
    for lease in leases:
        if lease.node == node:
            return lease.key, dict(lease.backend_data)
    raise RotateError(f"node '{node}' holds no lease")


def rotate_key(kv: KV, prefix: str, node: str, *, timeout: float = 30.0) -> tuple[str, str, float]:
    """(old public key, new public key, seconds until the agent published it)."""
    from pycni.cluster.backends.wireguard_lease import ROTATE_FIELD, request_rotation

    key, data = _lease(kv, prefix, node)
    old = str(data.get("PublicKey", ""))
    start = time.monotonic()
    try:
        request_rotation(kv, key)
    except LookupError:
        raise RotateError(f"node '{node}' holds no lease") from None
    except ValueError as exc:
        raise RotateError(f"node '{node}' does not run the wireguard backend ({exc})") from None
    while time.monotonic() - start < timeout:
        entry = kv.get(key)
        if entry is not None:
            now = json.loads(entry.value).get("BackendData") or {}
            if ROTATE_FIELD not in now and now.get("PublicKey") not in (None, old):
                return old, str(now["PublicKey"]), time.monotonic() - start
        time.sleep(0.05)
    raise RotateError(f"node '{node}': its agent did not publish a new key within {timeout:.0f}s "
                      "(is it running? the request stays in its lease)")


def cmd_rotate_key(args: argparse.Namespace, kv: KV) -> int:
    import sys

    try:
        old, new, took = rotate_key(kv, args.etcd_prefix, args.name, timeout=args.timeout)
    except RotateError as exc:
        print(f"pycni node rotate-key: {exc}", file=sys.stderr)
        return 1
    finally:
        kv.close()
    print(f"node {args.name}: public key {old} -> {new} ({took:.1f}s); peers follow on their next converge")
    return 0
