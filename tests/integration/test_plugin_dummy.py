"""pycni's dummy plugin. This kernel may lack the dummy driver: then ADD must fail cleanly, reserving nothing."""

from __future__ import annotations

import pytest

from tests.integration.linkplugin_helpers import (
    VERSIONS,
    Attach,
    addresses,
    host_local,
    kernel_supports,
    link_details,
)
from tests.support.cnilab import CniLab, use_free_subnets
from tests.support.host import link_exists

NO_DUMMY = "this kernel lacks the dummy driver (CONFIG_DUMMY): pycni.net raises UnsupportedKernelFeature"


@pytest.fixture(autouse=True)
def _free_subnets(lab: CniLab) -> None:
    use_free_subnets(lab)


@pytest.fixture
def has_dummy(make_netns) -> bool:
    return kernel_supports("dummy", make_netns().name)


def dummy(lab: CniLab, **extra: object) -> dict:
    lab.install_pycni("dummy", "host-local")
    return {"type": "dummy", "ipam": host_local(lab, routes=False), **extra}


def test_dummy_add_fails_cleanly_without_kernel_support(lab: CniLab, make_netns, has_dummy: bool) -> None:
    if has_dummy:
        pytest.skip("this kernel supports dummy links")
    net = Attach(lab, "dumnet", dummy(lab))
    ns = make_netns()
    rt = net.rt(ns.path)
    err = net.add_error(rt)
    assert "kernel does not support link type 'dummy'" in str(err)
    assert not link_exists("eth0", ns.name)
    assert lab.reserved_ips("dumnet") == []
    net.delete(rt)


@pytest.mark.parametrize("version", VERSIONS)
def test_dummy_add_check_del(lab: CniLab, make_netns, has_dummy: bool, version: str) -> None:
    if not has_dummy:
        pytest.skip(NO_DUMMY)
    net = Attach(lab, "dumnet", dummy(lab), version)
    ns = make_netns()
    rt = net.rt(ns.path)
    result = net.add(rt)
    details = link_details("eth0", ns.name)
    assert details["linkinfo"]["info_kind"] == "dummy" and "UP" in details["flags"]
    assert addresses("eth0", ns.name) == [str(result.ips[0].address)]
    if version != "0.3.1":
        net.check(rt)
    net.delete(rt)
    assert not link_exists("eth0", ns.name)
    assert lab.reserved_ips("dumnet") == []
    net.delete(rt)


@pytest.mark.parametrize(
    ("extra", "code", "text"),
    [
        ({"ipam": {}}, 7, "ipam: dummy requires an IPAM configuration"),
        ({"ipam": {"type": ""}}, 7, "ipam: dummy requires an IPAM configuration"),
        ({"mtu": "big"}, 7, "mtu: expected a non-negative integer"),
    ],
)
def test_dummy_rejects_malformed_config(lab: CniLab, make_netns, extra: dict, code: int, text: str) -> None:
    net = Attach(lab, "dumnet", {**dummy(lab), **extra})
    ns = make_netns()
    err = net.add_error(net.rt(ns.path))
    assert err.code == code and text in str(err), str(err)
    assert not link_exists("eth0", ns.name)
