"""The portmap plugin (chained): forward host ports to the container, per ``runtimeConfig.portMappings``.

- ADD: prevResult is required. No mappings (an empty list, or none sent):
  prevResult is printed unchanged and nothing is touched (plugins#510).
  Otherwise the backend installs the mappings for the container's first
  IPv4 and first IPv6 address; with snat on IPv4, route_localnet is turned
  on for the interface facing the pod (so 127.0.0.1:<hostPort> works); and
  UDP conntrack entries for the mapped host ports are flushed, so flows
  that began before the mapping take it (plugins#123, #553). Output:
  prevResult.
- DEL: removes exactly this attachment's rules, found by their owner tag
  (not by the mappings), so it also cleans up when runtimeConfig was not
  re-sent or the plugin crashed mid-ADD; then clears the UDP conntrack
  entries of the removed mappings, so established UDP flows stop going to
  the old pod (plugins#1190). An explicitly empty ``portMappings`` list
  returns at once. A config ADD refused (a bad mapping) does not fail DEL.
- CHECK: prevResult required; every rule/element of the attachment must be
  present.
- GC: removes the rules of attachments of this network that are not in
  ``cni.dev/valid-attachments``.

``make_plugin(backend_factory)`` is the registered plugin (pycni.registry)
with handlers that use fake backends, for tests.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from ipaddress import IPv4Address
from typing import TYPE_CHECKING, Any, Protocol

from pycni import skel
from pycni.plugins.portmap.conf import (
    BACKENDS,
    Attachment,
    FamilyTarget,
    Forward,
    PortMapConf,
    forwards_of,
    parse_conf,
    plan_targets,
)
from pycni.registry import load_plugin
from pycni.spec.errors import InvalidConfig

if TYPE_CHECKING:
    from pycni.spec.result import Result

__all__ = ["Backend", "cmd_add", "cmd_check", "cmd_del", "cmd_gc", "make_plugin"]


def _warn(message: str) -> None:
    """A best-effort step failed: say so on stderr (the runtime logs it), carry on.

    (Not the logging module: importing it costs a plugin process ~15 ms.)
    """
    sys.stderr.write(f"portmap: warning: {message}\n")


class Backend(Protocol):
    """What a rule backend does for one attachment (nftables or iptables)."""

    def forward(self, att: Attachment, targets: Sequence[FamilyTarget], conf: PortMapConf) -> None: ...

    def check(self, att: Attachment, targets: Sequence[FamilyTarget], conf: PortMapConf) -> None: ...

    def unforward(self, att: Attachment) -> list[Forward]: ...

    def gc(self, network: str, valid: set[tuple[str, str]]) -> list[Forward]: ...


BackendFactory = Callable[[str], Backend]


def load_backend(name: str) -> Backend:
    """The backend called ``name``; its module is imported only now."""
    if name == "iptables":
        from pycni.plugins.portmap.iptables_backend import IptablesBackend

        return IptablesBackend()
    from pycni.plugins.portmap.nft_io import NftBackend

    return NftBackend()


class KernelEffects:
    """The side steps around the rules: route_localnet and conntrack (replaced in unit tests)."""

    def enable_route_localnet(self, targets: Sequence[FamilyTarget]) -> None:
        from pycni.net.localnet import enable_route_localnet

        for target in targets:
            if isinstance(target.ip, IPv4Address) and enable_route_localnet(target.ip) is None:
                _warn(f"no route to {target.ip}; 127.0.0.1:<hostPort> will not reach it")

    def flush_conntrack(self, forwards: Sequence[Forward], *, after_delete: bool) -> None:
        from pycni.net.conntrack import FlowFilter, delete_flows
        from pycni.net.errors import NetError

        # UDP only, both ways: a UDP client keeps reusing one 5-tuple, so its
        # entry (and the NAT decided on its first packet) never expires while
        # it sends; a TCP client's next connection gets a new entry anyway.
        # Skipping TCP spares each DEL a conntrack table walk (~10 ms).
        if after_delete:  # the removed mappings' UDP flows DNATed to that pod (plugins#1190)
            filters = [
                FlowFilter(f.family, "udp", f.host_port, f.host_ip, f.pod_ip, f.container_port)
                for f in forwards
                if f.protocol == "udp"
            ]
        else:  # new mappings: any UDP flow to the host port may be stale
            filters = [FlowFilter(f.family, "udp", f.host_port, f.host_ip) for f in forwards if f.protocol == "udp"]
        try:
            delete_flows(sorted(set(filters), key=repr))
        except NetError as exc:  # best effort, as in the reference
            _warn(str(exc))


def _attachment(args: skel.CmdArgs) -> Attachment:
    return Attachment(args.network_name, args.container_id, args.ifname)


def cmd_add(
    args: skel.CmdArgs, backend_factory: BackendFactory = load_backend, effects: KernelEffects | None = None
) -> Result:
    conf = parse_conf(args.config)
    prev = args.prev_result()
    if prev is None:
        raise InvalidConfig("prevResult: missing; portmap must be called as a chained plugin")
    if not conf.mappings:
        return prev
    targets = plan_targets(conf, prev, args.ifname)
    effects = effects or KernelEffects()
    backend_factory(conf.backend).forward(_attachment(args), targets, conf)
    if conf.snat:
        effects.enable_route_localnet(targets)
    effects.flush_conntrack(forwards_of(targets), after_delete=False)
    return prev


def _cleanup_conf(config: dict[str, Any]) -> PortMapConf:
    """The config as DEL and GC need it: they must clean up even after a config that ADD refused.

    (A runtime DELs the whole chain after a failed ADD; a portmap DEL that
    failed on the bad mapping would keep the runtime from releasing the
    bridge's veth and IP.) Cleanup needs only the backend; it goes by owner tag.
    """
    try:
        return parse_conf(config)
    except InvalidConfig:
        backend = config.get("backend")
        name, version = config.get("name"), config.get("cniVersion")
        return PortMapConf(
            network=name if isinstance(name, str) else "",
            cni_version=version if isinstance(version, str) else "",
            mappings=None,
            backend=backend if backend in BACKENDS else "nftables",
        )


def cmd_del(
    args: skel.CmdArgs, backend_factory: BackendFactory = load_backend, effects: KernelEffects | None = None
) -> None:
    conf = _cleanup_conf(args.config)
    if conf.mappings is not None and not conf.mappings:
        return  # the runtime said: no mappings (the ADD installed none)
    removed = backend_factory(conf.backend).unforward(_attachment(args))
    if removed:
        (effects or KernelEffects()).flush_conntrack(removed, after_delete=True)


def cmd_check(args: skel.CmdArgs, backend_factory: BackendFactory = load_backend) -> None:
    conf = parse_conf(args.config)
    prev = args.prev_result()
    if prev is None:
        raise InvalidConfig("prevResult: missing; CHECK needs the result of ADD")
    if not conf.mappings:
        return
    targets = plan_targets(conf, prev, args.ifname)
    backend_factory(conf.backend).check(_attachment(args), targets, conf)


def cmd_gc(
    args: skel.CmdArgs, backend_factory: BackendFactory = load_backend, effects: KernelEffects | None = None
) -> None:
    conf = _cleanup_conf(args.config)
    removed = backend_factory(conf.backend).gc(args.network_name, set(args.valid_attachments()))
    if removed:
        (effects or KernelEffects()).flush_conntrack(removed, after_delete=True)


def make_plugin(backend_factory: BackendFactory = load_backend, effects: KernelEffects | None = None) -> skel.Plugin:
    def add(args: skel.CmdArgs) -> Result:
        return cmd_add(args, backend_factory, effects)

    def delete(args: skel.CmdArgs) -> None:
        cmd_del(args, backend_factory, effects)

    def check(args: skel.CmdArgs) -> None:
        cmd_check(args, backend_factory)

    def gc(args: skel.CmdArgs) -> None:
        cmd_gc(args, backend_factory, effects)

    return replace(load_plugin("portmap"), add=add, delete=delete, check=check, gc=gc)
