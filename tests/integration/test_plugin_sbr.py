"""pycni's sbr plugin on a pod's second interface, proven with packets.

Topology (all subnets are this test's own; neither bridge has an address,
so nothing is routed by the host):

    pod: eth0 on bridge A (subnet SA), default route via SA.254 -- nobody there
         net1 on bridge B (subnet SB), gateway SB.1
    router netns: SB.1 on bridge B, SR.1 towards the client
    client netns: SR.2, default route via SR.1

The client pings the pod's net1 address. The request arrives on net1; the
reply (source: the net1 address, destination: SR.2, a remote subnet) follows
the pod's default route out of eth0 and is lost, unless sbr sends traffic
from the net1 address through its own table, whose default route is the
router. A pod without sbr is the control: same networks, no reply.
"""

from __future__ import annotations

import json
import os
import random
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pycni.rundir import netns_lock
from pycni.runtime import CniConfig, RuntimeConf, load_file, load_network_conf
from pycni.spec.errors import CniError
from tests.support.cnilab import CniLab
from tests.support.host import ip_json, ping, run


@dataclass
class World:
    sa: str  # "10.a.b" prefixes of the three /24s
    sb: str
    sr: str
    bridge_a: str
    bridge_b: str
    client: Any  # Netns
    router: Any  # Netns


def _prefixes() -> tuple[str, str, str]:
    second = random.randint(160, 199)
    third = random.sample(range(256), 3)
    sa, sb, sr = (f"10.{second}.{t}" for t in third)
    return sa, sb, sr


def bridge(
    name: str,
    prefix: str,
    lab: CniLab,
    *,
    first: int,
    gateway: str | None = None,
    routes: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    rng: dict[str, str] = {
        "subnet": f"{prefix}.0/24",
        "rangeStart": f"{prefix}.{first}",
        "rangeEnd": f"{prefix}.{first + 9}",
    }
    if gateway:
        rng["gateway"] = gateway
    ipam = {"type": "host-local", "ranges": [[rng]], "routes": routes or [], "dataDir": str(lab.ipam_dir)}
    return {"type": "bridge", "bridge": name, "isGateway": False, "ipam": ipam}


@pytest.fixture
def world(lab: CniLab, make_netns, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("PYCNI_RUN_DIR", str(tmp_path / "run"))  # inherited by the plugins the runtime execs
    lab.install_pycni("sbr")
    token = uuid.uuid4().hex[:6]
    sa, sb, sr = _prefixes()
    w = World(sa, sb, sr, f"psa{token}", f"psb{token}", make_netns(), make_netns())
    router = w.router
    host_end = f"prb{token}"
    try:
        # Bridge B exists before the router's port is enslaved (the bridge plugin would create it too).
        run("ip", "link", "add", w.bridge_b, "type", "bridge")
        run("ip", "link", "set", w.bridge_b, "up")
        run("ip", "link", "add", host_end, "type", "veth", "peer", "name", "rb", "netns", router.name)
        run("ip", "link", "set", host_end, "master", w.bridge_b, "up")
        run("ip", "addr", "add", f"{sb}.1/24", "dev", "rb", netns=router.name)
        run("ip", "link", "set", "rb", "up", netns=router.name)
        run(
            "ip", "link", "add", "rc", "netns", router.name, "type", "veth", "peer", "name", "c", "netns", w.client.name
        )
        run("ip", "addr", "add", f"{sr}.1/24", "dev", "rc", netns=router.name)
        run("ip", "link", "set", "rc", "up", netns=router.name)
        run("sysctl", "-qw", "net.ipv4.ip_forward=1", netns=router.name)
        run("ip", "addr", "add", f"{sr}.2/24", "dev", "c", netns=w.client.name)
        run("ip", "link", "set", "c", "up", netns=w.client.name)
        run("ip", "route", "add", "default", "via", f"{sr}.1", netns=w.client.name)
        assert ping(f"{sb}.1", w.client.name)  # the client reaches the router's side of network B
        yield w
    finally:
        run("ip", "link", "del", host_end, check=False)
        for name in (w.bridge_a, w.bridge_b):
            run("ip", "link", "del", name, check=False)


def networks(lab: CniLab, w: World) -> None:
    dead_gateway = f"{w.sa}.254"  # nothing answers there: replies sent out of eth0 are lost
    lab.write_conflist(
        "sbr-a", [bridge(w.bridge_a, w.sa, lab, first=10, routes=[{"dst": "0.0.0.0/0", "gw": dead_gateway}])]
    )
    lab.write_conflist("sbr-b", [bridge(w.bridge_b, w.sb, lab, first=10, gateway=f"{w.sb}.1"), {"type": "sbr"}])
    lab.write_conflist("sbr-b-plain", [bridge(w.bridge_b, w.sb, lab, first=20, gateway=f"{w.sb}.1")])


class Pod:
    def __init__(self, lab: CniLab, netns: Any, second: str) -> None:
        self.runtime = CniConfig(lab.cni_path, cache_dir=str(lab.cache_dir))
        self.check_dir = lab.root / "check"
        self.check_dir.mkdir(exist_ok=True)
        self.netns = netns
        self.lists = [load_network_conf(str(lab.conf_dir), "sbr-a"), load_network_conf(str(lab.conf_dir), second)]
        self.attachments = [RuntimeConf(netns.name, netns.path, "eth0"), RuntimeConf(netns.name, netns.path, "net1")]

    def add(self) -> str:
        for netlist, rt in zip(self.lists, self.attachments, strict=True):
            result = self.runtime.add_network_list(netlist, rt)
        return str(result.ips[0].address.ip)  # net1's address

    def check_net1(self) -> None:
        """CHECK sbr alone: Debian's Go bridge CHECK wants net1's routes in the main table, where sbr took them from.

        A list of the same network name with only the sbr plugin gets the
        same cached result from the runtime.
        """
        netlist = self.lists[1]
        sbr_only = [dict(p.raw) for p in netlist.plugins if p.type == "sbr"]
        path = self.check_dir / f"{netlist.name}.conflist"
        path.write_text(json.dumps({"cniVersion": netlist.cni_version, "name": netlist.name, "plugins": sbr_only}))
        self.runtime.check_network_list(load_file(str(path)), self.attachments[1])

    def delete(self) -> None:
        for netlist, rt in reversed(list(zip(self.lists, self.attachments, strict=True))):
            self.runtime.del_network_list(netlist, rt)


def assert_check_waits_for_the_netns_lock(pod: Pod, lock_dir: Path) -> None:
    """While the namespace's lock (in PYCNI_RUN_DIR) is held, sbr's CHECK waits for it."""
    errors: list[BaseException] = []

    def check() -> None:
        try:
            pod.check_net1()
        except BaseException as exc:
            errors.append(exc)

    with netns_lock(os.stat(pod.netns.path).st_ino, directory=str(lock_dir)):
        thread = threading.Thread(target=check)
        thread.start()
        thread.join(timeout=1.5)
        assert thread.is_alive(), "CHECK did not wait for the lock"
    thread.join(timeout=30)
    assert not thread.is_alive() and not errors


def rules_from(address: str, netns: str) -> list[dict[str, Any]]:
    return [r for r in ip_json("rule", "show", netns=netns) if r.get("src") == address]


def test_replies_leave_through_net1_only_with_sbr(lab: CniLab, make_netns, world: World, tmp_path: Path) -> None:
    networks(lab, world)
    plain, shaped = Pod(lab, make_netns(), "sbr-b-plain"), Pod(lab, make_netns(), "sbr-b")
    try:
        plain_ip = plain.add()
        sbr_ip = shaped.add()
        # Both pods send everything that is not on-link out of eth0 ...
        for pod in (plain, shaped):
            (default,) = ip_json("route", "show", "default", netns=pod.netns.name)
            assert default["dev"] == "eth0"
        # ... so only the pod with sbr answers a remote client on net1,
        # though both answer on-link (net1's subnet) and both get the requests.
        assert ping(plain_ip, world.router.name) and ping(sbr_ip, world.router.name)
        assert not ping(plain_ip, world.client.name)
        assert ping(sbr_ip, world.client.name, count=2)

        (rule,) = rules_from(sbr_ip, shaped.netns.name)
        table = rule["table"]
        assert table == "100"  # the first free table from 100
        in_table = ip_json("route", "show", "table", table, netns=shaped.netns.name)
        assert {"dst": "default", "gateway": f"{world.sb}.1", "dev": "net1"}.items() <= in_table[0].items()
        assert any(r["dst"] == f"{world.sb}.0/24" and r["dev"] == "net1" for r in in_table)
        # net1's routes left the main table
        assert ip_json("route", "show", "dev", "net1", netns=shaped.netns.name) == []
        assert rules_from(plain_ip, plain.netns.name) == []
        shaped.check_net1()
        assert_check_waits_for_the_netns_lock(shaped, tmp_path / "run" / "sbr")
        run("ip", "route", "del", "default", "table", table, netns=shaped.netns.name)
        with pytest.raises(CniError, match=f"table {table} .* has no default route via {world.sb}.1"):
            shaped.check_net1()
        run("ip", "rule", "del", "from", sbr_ip, "table", table, netns=shaped.netns.name)
        with pytest.raises(CniError, match=f"no rule 'from {sbr_ip} lookup its table'"):
            shaped.check_net1()
        run("ip", "rule", "add", "from", sbr_ip, "table", table, netns=shaped.netns.name)

        shaped.delete()
        assert rules_from(sbr_ip, shaped.netns.name) == []
        assert list((tmp_path / "run" / "sbr").iterdir()) == []  # no lock file outlives a command
        shaped.delete()  # twice
    finally:
        plain.delete()
        shaped.delete()


def test_explicit_table_only_adds_rules(lab: CniLab, make_netns, world: World) -> None:
    lab.write_conflist("sbr-a", [bridge(world.bridge_a, world.sa, lab, first=10)])
    table = str(random.randint(1000, 60000))
    lab.write_conflist(
        "sbr-b",
        [
            bridge(world.bridge_b, world.sb, lab, first=10, gateway=f"{world.sb}.1"),
            {"type": "sbr", "table": int(table)},
        ],
    )
    pod = Pod(lab, make_netns(), "sbr-b")
    try:
        sbr_ip = pod.add()
        (rule,) = rules_from(sbr_ip, pod.netns.name)
        assert rule["table"] == table
        # routes untouched: net1's subnet route is still in main
        assert any(
            r["dst"] == f"{world.sb}.0/24" for r in ip_json("route", "show", "dev", "net1", netns=pod.netns.name)
        )
        pod.check_net1()
        pod.delete()
        assert rules_from(sbr_ip, pod.netns.name) == []
    finally:
        pod.delete()


def test_del_after_netns_is_gone_succeeds_and_creates_nothing(
    lab: CniLab, make_netns, world: World, tmp_path: Path
) -> None:
    networks(lab, world)
    ns = make_netns()
    pod = Pod(lab, ns, "sbr-b")
    pod.add()
    run("ip", "netns", "delete", ns.name)
    pod.delete()  # the reference fails here, and leaves a regular file at the netns path
    assert not os.path.lexists(ns.path)
    assert list((tmp_path / "run" / "sbr").iterdir()) == []


def test_missing_prev_result_is_a_config_error(lab: CniLab, make_netns) -> None:
    lab.install_pycni("sbr")
    lab.write_conflist("sbr-only", [{"type": "sbr"}])
    netlist = load_network_conf(str(lab.conf_dir), "sbr-only")
    ns = make_netns()
    with pytest.raises(CniError, match="prevResult: missing; sbr must be called as a chained plugin") as err:
        CniConfig(lab.cni_path, cache_dir=str(lab.cache_dir)).add_network_list(
            netlist, RuntimeConf(ns.name, ns.path, "net1")
        )
    assert err.value.code == 7
