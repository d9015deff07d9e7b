"""The etcd client pycni's cluster code uses: ``EtcdKV``, the ``KV`` contract (kv.py) over etcd's gRPC API.

``EtcdKV`` is ``etcd_grpc.EtcdGrpcKV``. Why gRPC and not etcd's JSON
gateway (``etcd_gateway.EtcdGatewayKV``, which it replaced): etcd encodes
an event once in protobuf for all its watchers instead of once in JSON per
watch stream, and a range in protobuf instead of JSON; at 1,000 nodes a
new lease reaches the last node in about half the time, at a fraction of
etcd's CPU (README, "Convergence"). Both clients hold the same contract
(tests/cluster_etcd/test_kv_conformance.py runs every case on each).
"""

from __future__ import annotations

from pycni.cluster.etcd_common import DEFAULT_ENDPOINT, parse_endpoints
from pycni.cluster.etcd_grpc import EtcdGrpcKV

__all__ = ["DEFAULT_ENDPOINT", "EtcdKV", "parse_endpoints"]

EtcdKV = EtcdGrpcKV
