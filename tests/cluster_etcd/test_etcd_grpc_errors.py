"""Which gRPC failures EtcdGrpcKV retries on the next endpoint, and which are etcd's answer (no etcd needed)."""

from __future__ import annotations

import pytest

from pycni.cluster.etcd_grpc import _retryable  # first: it sets gRPC's environment before grpc is imported

import grpc  # type: ignore[import-untyped]  # isort: skip


@pytest.mark.parametrize(("code", "message"), [
    (grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses; last error: connection refused"),
    (grpc.StatusCode.UNAVAILABLE, "etcdserver: leader changed"),
    (grpc.StatusCode.UNAVAILABLE, "etcdserver: no leader"),
    (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"),
    (grpc.StatusCode.UNKNOWN, "Stream removed"),
])
def test_unreachable_or_leaderless_is_retried(code: grpc.StatusCode, message: str) -> None:
    assert _retryable(code, message)


@pytest.mark.parametrize(("code", "message"), [
    (grpc.StatusCode.NOT_FOUND, "etcdserver: requested lease not found"),
    (grpc.StatusCode.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted"),
    (grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: duplicate key given in txn request"),
    (grpc.StatusCode.UNKNOWN, "etcdserver: some refusal etcd has no code for"),
    (grpc.StatusCode.PERMISSION_DENIED, "etcdserver: permission denied"),
])
def test_an_answer_from_etcd_is_not_retried(code: grpc.StatusCode, message: str) -> None:
    assert not _retryable(code, message)
