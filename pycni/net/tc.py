"""Traffic control: token-bucket shaping, ingress redirects to ifb devices, ifb links.

Contract:

- ``tbf_params(rate_bits, burst_bits)`` is pure: the TBF parameters the
  kernel is given for a rate in bits/s and a burst in bits (rate and burst
  in bytes, ``buffer`` in psched ticks, ``limit`` = what 25 ms at the rate
  plus the burst hold). CHECK compares the kernel's copy against the same
  function, so the two can never drift apart.
- ``set_tbf(dev, params)`` makes TBF the root qdisc of ``dev`` (replacing
  whatever root qdisc was there, so a repeated ADD converges).
- ``redirect_ingress(dev, target)`` sends every packet arriving on ``dev``
  to ``target``'s egress: a u32 match-all filter with a mirred redirect on
  the device's ingress hook. An existing ``clsact`` qdisc is reused (its
  ingress hook is the same ``ffff:fff2``), otherwise an ``ingress`` qdisc is
  added; a stale redirect of ours left by an earlier attempt is replaced.
- ``list_qdiscs`` and ``ingress_redirects`` read back what is installed.
- ``create_ifb`` makes an Intermediate Functional Block device, tagged in
  its link alias so that GC can recognise it later.

Functions act in the calling thread's network namespace. Devices are
named by their names; a missing one is ``LinkNotFound``.
"""

from __future__ import annotations

import errno
import functools
from dataclasses import dataclass, replace
from typing import Any

from pycni.net.errors import LinkExists, NetError
from pycni.net.links import LinkInfo, get_link
from pycni.net.netlink.errors import failing
from pycni.net.netlink.iproute import IPRoute, rtnl
from pycni.net.netlink.lookup import index_of
from pycni.net.netlink.messages import Message, attr

__all__ = [
    "MAX_TBF_RATE_BITS",
    "TBF_LATENCY_MS",
    "QdiscInfo",
    "TbfParams",
    "create_ifb",
    "ingress_redirects",
    "list_qdiscs",
    "psched_tick_in_usec",
    "redirect_ingress",
    "set_tbf",
    "tbf_params",
]

#: Queueing latency the bandwidth plugin allows a TBF (sets its ``limit``).
TBF_LATENCY_MS = 25
#: The kernel's tc_tbf_qopt carries the rate in a u32 of bytes per second.
MAX_TBF_RATE_BITS = 0xFFFFFFFF * 8
_U32_MAX = 0xFFFFFFFF
_USEC_PER_SEC = 1_000_000

TC_H_ROOT = 0xFFFFFFFF
TC_H_INGRESS = 0xFFFFFFF1  # the parent of ingress/clsact qdiscs
INGRESS_HOOK = 0xFFFFFFF2  # filters on the ingress hook (ingress or clsact)
_INGRESS_HANDLE = 0xFFFF0000
_TBF_HANDLE = 0x10000  # 1:
_ETH_P_ALL = 0x0003
#: u32 filter priority of the redirect (the reference plugin's).
REDIRECT_PRIO = 1
_MIRRED_EGRESS_REDIRECT = 1  # TCA_EGRESS_REDIR


@dataclass(frozen=True)
class TbfParams:
    """A TBF qdisc's settings as the kernel stores them."""

    rate: int  # bytes per second
    burst: int  # bytes
    buffer: int  # psched ticks to send ``burst`` at ``rate``
    limit: int  # bytes queued before drops


@dataclass(frozen=True)
class QdiscInfo:
    """One qdisc as the kernel reports it; the TBF fields are None for other kinds."""

    kind: str  # "tbf", "ingress", "clsact", "noqueue", ...
    handle: int
    parent: int
    rate: int | None = None  # bytes per second
    buffer: int | None = None  # ticks
    limit: int | None = None  # bytes

    @property
    def is_root(self) -> bool:
        return self.parent == TC_H_ROOT


@functools.cache
def psched_tick_in_usec() -> float:
    """Psched ticks per microsecond (/proc/net/psched), as tc computes it."""
    try:
        with open("/proc/net/psched") as f:
            t2us, us2t, clock_res, _ = (int(word, 16) for word in f.read().split()[:4])
    except (OSError, ValueError) as exc:
        raise NetError(f"failed to read /proc/net/psched: {exc}") from exc
    clock_factor = clock_res / _USEC_PER_SEC
    return t2us / us2t * clock_factor


def tbf_params(
    rate_bits: int, burst_bits: int, *, latency_ms: int = TBF_LATENCY_MS, tick_in_usec: float | None = None
) -> TbfParams:
    """The TBF settings for ``rate_bits`` bits/s and ``burst_bits`` bits.

    Bits become whole bytes (rounding down, as the reference plugin does);
    both must come to at least one byte. ``buffer`` is the time to send the
    burst at the rate, in ticks, computed exactly as tc (and pyroute2) do.
    The kernel keeps it in a u32 (about 275 s at the usual 64 ns tick):
    a longer burst is cut down to the longest one that fits. Runtimes ask
    for "no burst limit" with a huge burst (kubelet/containerd send
    2^31-1 bits), and that cap is what "no limit" means to the kernel; the
    reference plugin lets the u32 wrap around instead. ``limit`` (also a
    u32) is ``latency_ms`` worth of the rate plus the burst, capped likewise.
    """
    if tick_in_usec is None:
        tick_in_usec = psched_tick_in_usec()
    rate = rate_bits // 8
    burst = burst_bits // 8
    if rate <= 0 or burst <= 0:
        raise ValueError(f"tbf_params: rate and burst must be at least 8 bits (got {rate_bits}, {burst_bits})")
    max_usec = int(_U32_MAX / tick_in_usec)
    if _xmit_usec(rate, burst) > max_usec:
        burst = max_usec * rate // _USEC_PER_SEC
    buffer = int(_xmit_usec(rate, burst) * tick_in_usec)
    limit = min(int(rate * latency_ms * 1000 / _USEC_PER_SEC) + burst, _U32_MAX)
    return TbfParams(rate=rate, burst=burst, buffer=buffer, limit=limit)


def _xmit_usec(rate: int, size: int) -> int:
    """Whole microseconds to send ``size`` bytes at ``rate`` bytes/s (tc's expression, float order included)."""
    return int(_USEC_PER_SEC * (float(size) / rate))


# --------------------------------------------------------------------------
# Reading back
# --------------------------------------------------------------------------


def _qdisc_info(msg: Message) -> QdiscInfo:
    kind = attr(msg, "TCA_KIND", "")
    info = QdiscInfo(kind=kind, handle=int(msg["handle"]), parent=int(msg["parent"]))
    options = attr(msg, "TCA_OPTIONS") if kind == "tbf" else None
    parms = options.get_attr("TCA_TBF_PARMS") if options is not None else None
    if parms is None:
        return info
    return replace(info, rate=int(parms["rate"]), buffer=int(parms["buffer"]), limit=int(parms["limit"]))


def list_qdiscs(dev: str) -> list[QdiscInfo]:
    """The qdiscs attached to ``dev`` (root, ingress and their children)."""
    with rtnl() as ipr:
        index = index_of(dev)
        with failing(f"list qdiscs of link '{dev}'"):
            return [_qdisc_info(m) for m in ipr.get_qdiscs(index=index)]


def _redirect_target(msg: Message) -> int | None:
    """The ifindex a u32 match-all filter redirects to (mirred egress redirect), else None."""
    if attr(msg, "TCA_KIND") != "u32":
        return None
    options = attr(msg, "TCA_OPTIONS")
    actions = options.get_attr("TCA_U32_ACT") if options is not None else None
    if actions is None:
        return None
    for _name, action in actions.get("attrs", []):
        if not hasattr(action, "get_attr") or action.get_attr("TCA_ACT_KIND") != "mirred":
            continue
        act_options = action.get_attr("TCA_ACT_OPTIONS")
        parms = act_options.get_attr("TCA_MIRRED_PARMS") if act_options is not None else None
        if parms is not None and int(parms["eaction"]) == _MIRRED_EGRESS_REDIRECT:
            return int(parms["ifindex"])
    return None


def _ingress_filters(ipr: IPRoute, index: int, dev: str) -> list[Message]:
    with failing(f"list ingress filters of link '{dev}'"):
        return list(ipr.get_filters(index=index, parent=INGRESS_HOOK))


def ingress_redirects(dev: str) -> list[int]:
    """The ifindexes that u32 filters on ``dev``'s ingress hook redirect packets to."""
    with rtnl() as ipr:
        index = index_of(dev)
        targets = [_redirect_target(m) for m in _ingress_filters(ipr, index, dev)]
    return [t for t in targets if t is not None]


# --------------------------------------------------------------------------
# Changing
# --------------------------------------------------------------------------


def set_tbf(dev: str, params: TbfParams) -> None:
    """Make a TBF with ``params`` the root qdisc (handle 1:) of ``dev``."""
    with rtnl() as ipr:
        index = index_of(dev)
        with failing(f"set tbf qdisc on link '{dev}'"):
            # pyroute2 derives the buffer from rate and burst by the formula
            # tbf_params uses, so the kernel gets exactly params.buffer.
            ipr.tc("replace", "tbf", index, _TBF_HANDLE, rate=params.rate, burst=params.burst, limit=params.limit)


def _ensure_ingress_qdisc(ipr: IPRoute, index: int, dev: str) -> None:
    with failing(f"list qdiscs of link '{dev}'"):
        qdiscs = [_qdisc_info(m) for m in ipr.get_qdiscs(index=index)]
    if any(q.parent == TC_H_INGRESS and q.kind in ("ingress", "clsact") for q in qdiscs):
        return
    try:
        with failing(f"add ingress qdisc to link '{dev}'", by_errno={errno.EEXIST: NetError}):
            ipr.tc("add", "ingress", index, _INGRESS_HANDLE)
    except NetError as exc:
        if exc.errno != errno.EEXIST:  # added meanwhile: fine
            raise


def redirect_ingress(dev: str, target: str) -> None:
    """Redirect everything arriving on ``dev`` to the egress of ``target`` (u32 match-all + mirred)."""
    with rtnl() as ipr:
        index = index_of(dev)
        target_index = index_of(target)
        _ensure_ingress_qdisc(ipr, index, dev)
        for msg in _ingress_filters(ipr, index, dev):
            redirect = _redirect_target(msg)
            if redirect == target_index:
                return  # already in place (a repeated ADD)
            if redirect is not None and int(msg["info"]) >> 16 == REDIRECT_PRIO:
                # A match-all redirect at our priority to another device: a
                # leftover of an earlier ADD whose ifb is gone. It would
                # steal every packet before ours sees it.
                with failing(f"delete stale redirect filter on link '{dev}'"):
                    ipr.tc("del-filter", index=index, parent=INGRESS_HOOK, info=int(msg["info"]), handle=msg["handle"])
        action = {"kind": "mirred", "direction": "egress", "action": "redirect", "ifindex": target_index}
        with failing(f"add redirect filter from link '{dev}' to '{target}'"):
            ipr.tc(
                "add-filter",
                "u32",
                index,
                parent=INGRESS_HOOK,
                prio=REDIRECT_PRIO,
                protocol=_ETH_P_ALL,
                target=0x10001,
                keys=["0x0/0x0+0"],  # match all
                action=action,
            )


def create_ifb(name: str, *, mtu: int | None = None, alias: str = "") -> LinkInfo:
    """Create the ifb device ``name`` (with ``mtu`` and link ``alias``) and bring it up.

    The alias is set before the device comes up, so an ifb that carries
    traffic always carries its tag. An existing link of that name is
    ``LinkExists``.
    """
    spec: dict[str, Any] = {"ifname": name, "kind": "ifb"}
    if mtu:
        spec["mtu"] = mtu
    with rtnl() as ipr:
        with failing(f"create ifb '{name}'", by_errno={errno.EEXIST: LinkExists}):
            ipr.link("add", **spec)
        index = index_of(name)
        try:
            with failing(f"set up ifb '{name}'"):
                if alias:
                    # The kernel ignores IFLA_IFALIAS in RTM_NEWLINK: a second request.
                    ipr.link("set", index=index, ifalias=alias)
                ipr.link("set", index=index, state="up")
        except BaseException:
            with failing(f"delete ifb '{name}'"):
                ipr.link("del", index=index)
            raise
    return get_link(name)
