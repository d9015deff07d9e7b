"""The etcd client pycni's cluster code uses: ``EtcdKV``, the ``KV`` contract (kv.py) over etcd's gRPC API.

``EtcdKV`` is ``etcd_grpc.EtcdGrpcKV``. Why gRPC and not etcd's JSON
gateway (``etcd_gateway.EtcdGatewayKV``, which it replaced): etcd encodes
an event once in protobuf for all its watchers instead of once in JSON per
watch stream, and a range in protobuf instead of JSON; at 1,000 nodes a
new lease reaches the last node in about half the time, at a fraction of
etcd's CPU (README, "Convergence"). Both clients hold the same contract
(tests/cluster_etcd/test_kv_conformance.py runs every case on each).

``etcd_client`` is what code that may run inside ``run_in_netns`` calls
(a lab's etcd is reachable only in its underlay namespace): gRPC opens its
connections from threads of its own, which stay in the process's
namespace, so there the gateway client, whose sockets are the calling
thread's, is used instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from pycni.cluster.etcd_common import DEFAULT_ENDPOINT, parse_endpoints, thread_in_process_netns
from pycni.cluster.etcd_grpc import EtcdGrpcKV
from pycni.cluster.kv import KV

__all__ = ["DEFAULT_ENDPOINT", "EtcdKV", "etcd_client", "parse_endpoints"]

EtcdKV = EtcdGrpcKV


def etcd_client(endpoints: str | Sequence[str], *, ca_file: str | None = None, cert_file: str | None = None,
                key_file: str | None = None, timeout: float = 5.0, retry_for: float = 10.0) -> KV:
    """``EtcdKV``, or the gateway client in a thread that entered another network namespace."""
    if thread_in_process_netns():
        return EtcdKV(endpoints, ca_file=ca_file, cert_file=cert_file, key_file=key_file, timeout=timeout,
                      retry_for=retry_for)
    from pycni.cluster.etcd_gateway import EtcdGatewayKV

    return EtcdGatewayKV(endpoints, ca_file=ca_file, cert_file=cert_file, key_file=key_file, timeout=timeout,
                         retry_for=retry_for)
