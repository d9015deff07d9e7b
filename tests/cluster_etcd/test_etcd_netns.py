"""An etcd client made in a thread that entered another network namespace connects from that namespace.

gRPC opens connections from threads of its own, which stay in the
process's namespace; ``etcd_client`` hands such a thread the gateway
client instead, and ``EtcdGrpcKV`` refuses to be made there. The proof is
a packet's fate: the etcd listens in the machine's namespace only, so from
an empty namespace it must be unreachable (a client that reached it
anyway would, in a lab, have reached another lab's etcd or left the host).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from pycni.cluster.etcd import etcd_client
from pycni.cluster.etcd_gateway import EtcdGatewayKV
from pycni.cluster.etcd_grpc import EtcdGrpcKV
from pycni.cluster.kv import KVError, KVUnavailable
from pycni.net.netns import run_in_netns
from tests.cluster_etcd.etcd_server import EtcdServer
from tests.support.netns import Netns, netns_factory

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create a network namespace")


@pytest.fixture
def empty_netns() -> Iterator[Netns]:
    factory: Iterator[Callable[[], Netns]] = netns_factory("pycni-e-")
    make = next(factory)
    yield make()
    factory.close()  # deletes it


def test_a_thread_in_another_namespace_reaches_only_what_that_namespace_reaches(
        etcd_server: EtcdServer, empty_netns: Netns, prefix: str) -> None:
    here = etcd_client(etcd_server.endpoint, retry_for=0.5)
    assert here.create(f"{prefix}/k", b"v")
    assert isinstance(here, EtcdGrpcKV)

    def read_from_inside() -> object:
        kv = etcd_client(etcd_server.endpoint, timeout=1.0, retry_for=0.5)
        try:
            assert isinstance(kv, EtcdGatewayKV)
            return kv.get(f"{prefix}/k")
        finally:
            kv.close()

    with pytest.raises(KVUnavailable):
        run_in_netns(empty_netns.path, read_from_inside)
    here.close()


def test_the_grpc_client_refuses_a_thread_in_another_namespace(etcd_server: EtcdServer, empty_netns: Netns) -> None:
    with pytest.raises(KVError, match="another network namespace"):
        run_in_netns(empty_netns.path, EtcdGrpcKV, etcd_server.endpoint)
