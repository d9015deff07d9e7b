"""A process with gRPC channels open forks children that live (gRPC's fork handlers aborted some of them).

subprocess with ``preexec_fn`` forks (no vfork), so the child runs every
pthread_atfork handler before it execs: with gRPC's fork support on, 8
children in 200 died of SIGABRT here (the executor tests' children, in a
test process that had run the etcd tests, failed CI that way).
"""

from __future__ import annotations

import ctypes
import signal
import subprocess

from pycni.cluster.etcd import EtcdKV
from tests.cluster_etcd.etcd_server import EtcdServer


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG, as the executor tests do


def test_children_forked_beside_open_grpc_channels_reach_exec(etcd_server: EtcdServer, prefix: str) -> None:
    kv = EtcdKV(etcd_server.endpoint)
    try:
        kv.list_prefix(prefix)  # a connected channel, its threads running
        codes = [subprocess.run(["true"], preexec_fn=_die_with_parent, check=False).returncode for _ in range(150)]
    finally:
        kv.close()
    assert [code for code in codes if code != 0] == []
