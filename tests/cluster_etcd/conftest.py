"""Tests against a real etcd (Debian's etcd-server), started by the tests themselves on loopback.

``etcd_server`` is one etcd per xdist worker (session scope); tests keep
apart by using their own key prefix (``prefix``). ``own_etcd`` is an etcd
for one test alone, which that test may ``stop()`` and ``start()`` again
(same ports, same data dir). Every etcd is killed by its PID at teardown.

Without /usr/bin/etcd the etcd tests skip; ``PYCNI_REQUIRE_KERNEL_TESTS=1``
(CI) turns the skip into a failure. No root is needed.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.cluster_etcd.etcd_server import EtcdServer, etcd_binary, make_tls_files


def _need_etcd() -> None:
    if etcd_binary() is not None:
        return
    reason = "needs etcd (Debian: apt-get install etcd-server)"
    if os.environ.get("PYCNI_REQUIRE_KERNEL_TESTS") == "1":
        pytest.fail(f"etcd test prerequisite missing: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    _need_etcd()
    server = EtcdServer(tmp_path_factory.mktemp("etcd") / "data").start()
    yield server
    server.stop()


@pytest.fixture
def own_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    _need_etcd()
    server = EtcdServer(tmp_path_factory.mktemp("etcd-own") / "data").start()
    yield server
    server.stop()


@pytest.fixture
def prefix() -> str:
    return f"/t-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def tls_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    """An etcd serving https that wants a client certificate (certificates made with openssl)."""
    _need_etcd()
    if shutil.which("openssl") is None:
        if os.environ.get("PYCNI_REQUIRE_KERNEL_TESTS") == "1":
            pytest.fail("etcd TLS test prerequisite missing: openssl")
        pytest.skip("needs openssl to make certificates")
    certs = tmp_path_factory.mktemp("etcd-tls")
    server = EtcdServer(tmp_path_factory.mktemp("etcd-tls-data") / "data", tls=make_tls_files(certs)).start()
    yield server
    server.stop()


@pytest.fixture
def open_kv() -> Iterator[Callable[..., Any]]:
    """``EtcdKV(...)`` closed after the test: an unclosed client's pooled sockets would be
    garbage-collected in whichever later test, as a ResourceWarning that fails it."""
    from pycni.cluster.etcd import EtcdKV

    made: list[EtcdKV] = []

    def make(*args: Any, **kwargs: Any) -> EtcdKV:
        kv = EtcdKV(*args, **kwargs)
        made.append(kv)
        return kv

    yield make
    for kv in made:
        kv.close()
