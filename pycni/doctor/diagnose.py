"""One doctor run: collect, judge, and only then the active parts (synthetic pod, probes).

``diagnose(options, ...)`` returns the verdicts in report order and the
seconds it took. The synthetic pod runs only when no root cause it depends
on fails (``run.SYNTHETIC_ROOTS``): a pod on a node whose agent is down
would only wait for a timeout and repeat what is already reported. Probes
run when asked, to every peer lease.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, replace

from pycni.doctor.collect import collect
from pycni.doctor.result import CheckResult
from pycni.doctor.run import SYNTHETIC_ROOTS, ignored, judge, roots_failing
from pycni.doctor.snapshot import Options, Snapshot

__all__ = ["Diagnosis", "diagnose"]


@dataclass(frozen=True)
class Diagnosis:
    snapshot: Snapshot
    results: list[CheckResult]
    seconds: float


def diagnose(options: Options, *, tls: tuple[str | None, str | None, str | None] = (None, None, None),
             probe: bool = False, synthetic: bool = True, ignore: Collection[str] = (),
             etcd_timeout: float = 2.0) -> Diagnosis:
    start = time.monotonic()
    snap = collect(options, etcd_timeout=etcd_timeout, tls=tls)
    passive = judge(snap)
    if probe and snap.store is not None and snap.store.error is None and snap.store.backend_type:
        from pycni.doctor.probe import probe_peers

        own = snap.own_lease
        peers = [lease for lease in snap.store.leases if lease.node != options.node_name]
        pod_mtu = own.pod_mtu if own is not None and own.pod_mtu else (snap.winner.mtu if snap.winner else None)
        try:
            snap = replace(snap, probes=probe_peers(peers, snap.store.backend_type, pod_mtu))
        except (OSError, RuntimeError) as exc:
            snap = replace(snap, errors={**snap.errors, "probes": str(exc)})
    blocking = [r for r in roots_failing(passive, SYNTHETIC_ROOTS) if r not in ignore]
    if synthetic and not blocking and snap.winner is not None:
        from pycni.doctor.synthetic import run_synthetic

        snap = replace(snap, synthetic=run_synthetic(options, snap.winner.name))
    else:
        why = (f"not run: see {blocking[0]}" if blocking else "not run (--no-synthetic)" if not synthetic
               else "not run: no config (see conf-missing)")
        snap = replace(snap, errors={**snap.errors, "synthetic": why})
    results = ignored(judge(snap), ignore)
    return Diagnosis(snap, results, time.monotonic() - start)
