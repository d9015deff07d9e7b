"""EtcdKV, EtcdGrpcKV and the cluster commands against an etcd that serves https and wants client certificates."""

from __future__ import annotations

import threading
from ipaddress import IPv4Address, IPv4Network

import pytest

from pycni.cluster.config import ClusterConfig
from pycni.cluster.etcd_gateway import EtcdGatewayKV
from pycni.cluster.etcd_grpc import EtcdGrpcKV
from pycni.cluster.kv import KVUnavailable
from pycni.cluster.subnets import SubnetManager
from pycni.cluster.watch_loop import watch_leases
from pycni.spec.errors import InvalidConfig
from tests.cluster_etcd.etcd_server import EtcdServer
from tests.cluster_etcd.test_cli_cluster import ok, one_line_error, pycni

CLIENTS = pytest.mark.parametrize("kind", [EtcdGatewayKV, EtcdGrpcKV])


Client = EtcdGatewayKV | EtcdGrpcKV


def client(server: EtcdServer, kind: type[Client] = EtcdGrpcKV, **kw: object) -> Client:
    assert server.tls is not None
    files = {"ca_file": str(server.tls.ca), "cert_file": str(server.tls.client_cert),
             "key_file": str(server.tls.client_key)}
    files.update({k: v for k, v in kw.items() if isinstance(v, str) or v is None})  # type: ignore[misc]
    return kind(server.endpoint, retry_for=1, **files)  # type: ignore[arg-type]


@CLIENTS
def test_leases_and_watch_over_tls_with_a_client_certificate(tls_etcd: EtcdServer, prefix: str,
                                                             kind: type[EtcdGatewayKV | EtcdGrpcKV]) -> None:
    kv = client(tls_etcd, kind)
    sm = SubnetManager(kv, prefix)
    sm.init_config(ClusterConfig(network=IPv4Network("10.60.0.0/16")))
    leases, _ = sm.list_leases()
    gen = watch_leases(sm, threading.Event(), known=leases)
    lease = sm.acquire("a", IPv4Address("192.0.2.1"), {})
    event = next(gen)
    assert (event.type, event.lease.subnet) == ("added", lease.subnet)
    assert sm.renew(lease).subnet == lease.subnet
    kv.close()


@CLIENTS
def test_tls_mistakes_are_clear(tls_etcd: EtcdServer, kind: type[EtcdGatewayKV | EtcdGrpcKV]) -> None:
    assert tls_etcd.tls is not None
    with pytest.raises(KVUnavailable, match=r"TLS certificate verification failed"):
        client(tls_etcd, kind, ca_file=str(tls_etcd.tls.client_cert)).get("/x")  # not the CA that signed etcd's
    # etcd's alert arrives as "bad certificate" or, with TLS 1.3 timing, as a broken handshake
    with pytest.raises(KVUnavailable, match=r"etcd refused the client certificate|TLS handshake failed"):
        client(tls_etcd, kind, cert_file=None, key_file=None).get("/x")  # etcd wants a client certificate
    with pytest.raises(InvalidConfig, match=r"certificates given but an endpoint is not https://"):
        kind("http://127.0.0.1:2379", ca_file=str(tls_etcd.tls.ca))
    with pytest.raises(InvalidConfig, match=r"needs its key"):
        kind(tls_etcd.endpoint, cert_file=str(tls_etcd.tls.client_cert))


def test_cli_with_tls_flags(tls_etcd: EtcdServer, prefix: str) -> None:
    assert tls_etcd.tls is not None
    flags = ["--etcd-endpoints", tls_etcd.endpoint, "--etcd-prefix", prefix, "--etcd-cafile", str(tls_etcd.tls.ca),
             "--etcd-certfile", str(tls_etcd.tls.client_cert), "--etcd-keyfile", str(tls_etcd.tls.client_key)]
    assert "stored" in ok(pycni("cluster", "init", *flags, "--network", "10.61.0.0/16"))
    assert "Network     10.61.0.0/16" in ok(pycni("cluster", "show", *flags))
    error = one_line_error(pycni("cluster", "show", *flags[:4], "--etcd-cafile", str(tls_etcd.tls.client_cert),
                                 "--etcd-certfile", str(tls_etcd.tls.client_cert),
                                 "--etcd-keyfile", str(tls_etcd.tls.client_key)))
    assert "TLS certificate verification failed" in error
