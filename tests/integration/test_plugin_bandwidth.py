"""pycni's bandwidth plugin chained after a bridge, measured with real traffic.

Two pods share one bridge network whose chain ends in pycni's bandwidth
(opted in to the ``bandwidth`` capability). The shaped pod gets its limits
from the runtime (capability args); the peer pod gets none, so bandwidth
passes its result through. iperf3 runs between the two: the server in the
shaped pod, the client in the peer, once in each direction, and each
measured rate must be within 20% of the configured one.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pycni.plugins.bandwidth.conf import ifb_name
from pycni.plugins.common import owner_tag
from pycni.runtime import Attachment, CniConfig, RawExec, RuntimeConf, load_file, load_network_conf
from pycni.spec.errors import CniError
from tests.support.cnilab import CniLab
from tests.support.host import link_exists, run

INGRESS_RATE = 20_000_000  # bits/s into the shaped pod
EGRESS_RATE = 12_000_000  # bits/s out of it (different, so each direction proves its own limit)
BURST = 1_000_000  # bits: 125 kB, above a 64 kB GSO packet, small next to 3 s of traffic
LIMITS = {"ingressRate": INGRESS_RATE, "ingressBurst": BURST, "egressRate": EGRESS_RATE, "egressBurst": BURST}
TOLERANCE = 0.20


def _pycni_bridge_available() -> bool:
    try:
        from pycni.plugins import import_plugin

        import_plugin("bridge")
    except (ImportError, AttributeError, LookupError):
        return False
    return True


MAIN_PLUGINS = [
    "go-bridge",
    pytest.param(
        "pycni-bridge",
        marks=pytest.mark.skipif(not _pycni_bridge_available(), reason="pycni's bridge plugin is not there yet"),
    ),
]


def bandwidth(**values: int) -> dict[str, Any]:
    return {"type": "bandwidth", "capabilities": {"bandwidth": True}, **values}


def cni(lab: CniLab) -> CniConfig:
    return CniConfig(lab.cni_path, cache_dir=str(lab.cache_dir))


def exec_plugin(lab: CniLab, command: str, rt: RuntimeConf, config: dict[str, Any]) -> Any:
    """Run the installed bandwidth plugin once, outside any chain."""
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": rt.container_id,
        "CNI_NETNS": rt.netns,
        "CNI_IFNAME": rt.ifname,
        "CNI_PATH": ":".join(lab.cni_path),
    }
    out = RawExec().exec_plugin(str(lab.bin_dir / "bandwidth"), json.dumps(config).encode(), env, 30)
    return json.loads(out) if out.strip() else None


def host_veth(result: Any) -> str:
    (name,) = [i.name for i in result.interfaces if not i.sandbox and i.name.startswith("veth")]
    return name


def qdiscs(dev: str) -> list[dict[str, Any]]:
    return json.loads(run("tc", "-j", "qdisc", "show", "dev", dev).stdout)


def tbf_rate(dev: str) -> int | None:
    """The root TBF's rate in bytes/s, per tc."""
    for q in qdiscs(dev):
        if q["kind"] == "tbf" and q.get("root"):
            return int(q["options"]["rate"])
    return None


@pytest.fixture
def iperf_server(tmp_path: Path) -> Iterator[Any]:
    """Start ``iperf3 -s`` in a netns; stopped by PID at teardown."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(netns: str, bind: str, port: int = 5201) -> None:
        log = tmp_path / f"iperf3-{uuid.uuid4().hex[:6]}.log"
        with open(log, "wb") as out:
            # ip netns exec execs iperf3 itself, so this PID is the server's.
            proc = subprocess.Popen(
                ["ip", "netns", "exec", netns, "iperf3", "-s", "-B", bind, "-p", str(port), "--forceflush"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        procs.append(proc)
        deadline = time.monotonic() + 10
        while "Server listening" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"iperf3 server did not start: {log.read_text(errors='replace')}")
            time.sleep(0.05)

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def measure(client_netns: str, server_ip: str, *, reverse: bool, port: int = 5201) -> float:
    """Received bits/s of a 3 s TCP run (first second omitted: slow start and the initial burst)."""
    cmd = ["iperf3", "-c", server_ip, "-p", str(port), "-t", "3", "-O", "1", "-J"]
    if reverse:
        cmd.append("-R")  # the server (the shaped pod) sends
    for _ in range(5):
        report = json.loads(run(*cmd, netns=client_netns, timeout=30, check=False).stdout or "{}")
        if "sum_received" in report.get("end", {}):
            return float(report["end"]["sum_received"]["bits_per_second"])
        # e.g. "the server is busy running a test": the previous run's teardown is not finished yet
        time.sleep(0.5)
    raise AssertionError(f"iperf3 gave no measurement: {report.get('error', report)}")


@pytest.mark.parametrize("main", MAIN_PLUGINS)
def test_rates_are_enforced_in_each_direction(lab: CniLab, make_netns, iperf_server, main: str) -> None:
    lab.install_pycni("bandwidth", *(["bridge"] if main == "pycni-bridge" else []))
    lab.write_conflist("bwnet", [lab.bridge_plugin(), bandwidth()])
    netlist = load_network_conf(str(lab.conf_dir), "bwnet")
    runtime = cni(lab)
    shaped_ns, peer_ns = make_netns(), make_netns()
    shaped = RuntimeConf(shaped_ns.name, shaped_ns.path, "eth0", capability_args={"bandwidth": LIMITS})
    peer = RuntimeConf(peer_ns.name, peer_ns.path, "eth0")
    try:
        result = runtime.add_network_list(netlist, shaped)
        peer_result = runtime.add_network_list(netlist, peer)

        ifb = ifb_name("bwnet", shaped.container_id, "eth0")
        assert [i.name for i in result.interfaces][-1] == ifb
        assert not any(i.name.startswith("bwp") for i in peer_result.interfaces)  # no limits: passed through
        assert link_exists(ifb)
        veth = host_veth(result)
        assert tbf_rate(veth) == INGRESS_RATE // 8
        assert tbf_rate(ifb) == EGRESS_RATE // 8
        assert tbf_rate(host_veth(peer_result)) is None
        runtime.check_network_list(netlist, shaped)
        runtime.check_network_list(netlist, peer)

        shaped_ip = str(result.ips[0].address.ip)
        # one server per direction: a server still winding down the first run refuses or stalls the second
        iperf_server(shaped_ns.name, shaped_ip, 5201)
        iperf_server(shaped_ns.name, shaped_ip, 5202)
        into_pod = measure(peer_ns.name, shaped_ip, reverse=False, port=5201)
        out_of_pod = measure(peer_ns.name, shaped_ip, reverse=True, port=5202)
        print(
            f"[{main}] ingress {into_pod / 1e6:.2f} Mbit/s (limit {INGRESS_RATE / 1e6:g}), "
            f"egress {out_of_pod / 1e6:.2f} Mbit/s (limit {EGRESS_RATE / 1e6:g})"
        )
        assert into_pod == pytest.approx(INGRESS_RATE, rel=TOLERANCE)
        assert out_of_pod == pytest.approx(EGRESS_RATE, rel=TOLERANCE)
    finally:
        runtime.del_network_list(netlist, shaped)
        runtime.del_network_list(netlist, peer)
    assert not link_exists(ifb)
    runtime.del_network_list(netlist, shaped)  # a second DEL succeeds too


def test_check_detects_deleted_qdiscs(lab: CniLab, make_netns) -> None:
    lab.install_pycni("bandwidth")
    lab.write_conflist("bwnet", [lab.bridge_plugin(), bandwidth(**LIMITS)])
    netlist = load_network_conf(str(lab.conf_dir), "bwnet")
    runtime = cni(lab)
    ns = make_netns()
    rt = RuntimeConf(ns.name, ns.path, "eth0")
    try:
        result = runtime.add_network_list(netlist, rt)
        runtime.check_network_list(netlist, rt)

        veth, ifb = host_veth(result), ifb_name("bwnet", rt.container_id, "eth0")
        run("tc", "qdisc", "del", "dev", veth, "root")
        with pytest.raises(CniError, match=f"ingress shaping: no tbf qdisc on '{veth}'"):
            runtime.check_network_list(netlist, rt)
        run("tc", "qdisc", "add", "dev", veth, "root", "tbf", "rate", "1mbit", "burst", "125000", "latency", "25ms")
        with pytest.raises(CniError, match=r"ingress shaping: tbf on .* has rate 125000 B/s, expected 2500000"):
            runtime.check_network_list(netlist, rt)

        # bandwidth's ADD again (as when a runtime retries) converges: the same ifb, the right qdiscs.
        bridge_result = result.to_wire()
        bridge_result["interfaces"] = [i for i in bridge_result["interfaces"] if i["name"] != ifb]
        again = exec_plugin(
            lab, "ADD", rt, {"cniVersion": "1.0.0", "name": "bwnet", **bandwidth(**LIMITS), "prevResult": bridge_result}
        )
        assert [i["name"] for i in again["interfaces"]].count(ifb) == 1
        runtime.check_network_list(netlist, rt)

        run("tc", "qdisc", "del", "dev", ifb, "root")
        with pytest.raises(CniError, match=f"egress shaping: no tbf qdisc on '{ifb}'"):
            runtime.check_network_list(netlist, rt)
        run("tc", "qdisc", "del", "dev", veth, "ingress")
        with pytest.raises(CniError, match="is not redirected to ifb"):
            runtime.check_network_list(netlist, rt)
    finally:
        runtime.del_network_list(netlist, rt)
    assert not link_exists(ifb)


def _make_ifb(name: str, alias: str) -> None:
    run("ip", "link", "add", name, "type", "ifb")
    run("ip", "link", "set", name, "alias", alias)


def test_gc_removes_only_stale_ifbs_of_this_network(lab: CniLab, make_netns) -> None:
    lab.install_pycni("bandwidth")
    # A network name of its own: GC collects every ifb of the network outside the valid set,
    # including those of other tests running in parallel if they shared the name.
    net = f"bwgc-{uuid.uuid4().hex[:6]}"
    lab.write_conflist(net, [lab.bridge_plugin(), bandwidth(egressRate=EGRESS_RATE, egressBurst=BURST)])
    netlist = load_network_conf(str(lab.conf_dir), net)
    # GC needs spec 1.1.0, which Debian's Go bridge does not speak: a
    # bandwidth-only list of the same network does the collecting.
    gc_dir = lab.root / "gc"
    gc_dir.mkdir()
    gc_file = gc_dir / f"{net}.conflist"
    gc_file.write_text(json.dumps({"cniVersion": "1.1.0", "name": net, "plugins": [bandwidth()]}))
    gc_list = load_file(str(gc_file))
    runtime = cni(lab)
    ns = make_netns()
    rt = RuntimeConf(ns.name, ns.path, "eth0")
    token = uuid.uuid4().hex[:8]
    stale = ifb_name(net, f"ghost-{token}", "eth0")  # an attachment whose DEL never ran
    other_net = ifb_name("othernet", f"ghost-{token}", "eth0")  # another network's: not ours to collect
    foreign = f"pcf{token}"  # not made by pycni at all
    try:
        runtime.add_network_list(netlist, rt)
        live = ifb_name(net, rt.container_id, "eth0")
        _make_ifb(stale, owner_tag("bandwidth", net, f"ghost-{token}", "eth0"))
        _make_ifb(other_net, owner_tag("bandwidth", "othernet", f"ghost-{token}", "eth0"))
        _make_ifb(foreign, "somebody else's")

        runtime.gc_network_list(gc_list, [Attachment(rt.container_id, "eth0")])

        assert not link_exists(stale)
        assert link_exists(live) and link_exists(other_net) and link_exists(foreign)
    finally:
        runtime.del_network_list(netlist, rt)
        for name in (stale, other_net, foreign):
            run("ip", "link", "del", name, check=False)


BAD_VALUES = [
    ({"ingressRate": 1000}, "ingressBurst: must be set"),
    ({"egressBurst": 1000}, "egressRate: must be set"),
    ({"ingressRate": -5, "ingressBurst": 1000}, "ingressRate: expected a non-negative integer"),
    ({"egressRate": "10M", "egressBurst": 1000}, "egressRate: expected a non-negative integer"),
    ({"egressRate": 1.5e6, "egressBurst": 1000}, "egressRate: expected a non-negative integer"),
    ({"ingressRate": 4, "ingressBurst": 1000}, "ingressRate: 4 bits/s is less than one byte"),
    ({"ingressRate": 1000, "ingressBurst": 8 * 2**32}, "ingressBurst: burst cannot be more than 4GB"),
]


@pytest.mark.parametrize(("values", "message"), BAD_VALUES)
def test_bad_values_are_config_errors_naming_the_field(lab: CniLab, make_netns, values, message) -> None:
    lab.install_pycni("bandwidth")
    lab.write_conflist("bwnet", [{"type": "bandwidth", **values}])
    netlist = load_network_conf(str(lab.conf_dir), "bwnet")
    ns = make_netns()
    with pytest.raises(CniError, match=message) as err:
        cni(lab).add_network_list(netlist, RuntimeConf(ns.name, ns.path, "eth0"))
    assert err.value.code == 7


def test_bad_capability_values_name_the_runtime_config_field(lab: CniLab, make_netns) -> None:
    lab.install_pycni("bandwidth")
    lab.write_conflist("bwnet", [bandwidth()])
    netlist = load_network_conf(str(lab.conf_dir), "bwnet")
    ns = make_netns()
    rt = RuntimeConf(ns.name, ns.path, "eth0", capability_args={"bandwidth": {"egressRate": 1000}})
    with pytest.raises(CniError, match=r"runtimeConfig\.bandwidth\.egressBurst: must be set") as err:
        cni(lab).add_network_list(netlist, rt)
    assert err.value.code == 7


def test_spec_0_2_0_is_refused_with_code_1(lab: CniLab, make_netns) -> None:
    lab.install_pycni("bandwidth")
    lab.write_conflist("bwnet", [bandwidth(**LIMITS)], version="0.2.0")
    netlist = load_network_conf(str(lab.conf_dir), "bwnet")
    ns = make_netns()
    with pytest.raises(CniError, match="incompatible CNI versions") as err:
        cni(lab).add_network_list(netlist, RuntimeConf(ns.name, ns.path, "eth0"))
    assert err.value.code == 1


def test_non_veth_main_plugin_is_refused_clearly(lab: CniLab, make_netns) -> None:
    """Go macvlan gives the pod a macvlan: there is no host-side veth to shape on."""
    lab.install_pycni("bandwidth")
    master = f"pcm{uuid.uuid4().hex[:8]}"
    run("ip", "link", "add", master, "type", "veth", "peer", "name", f"{master}p")
    try:
        macvlan = {
            "type": "macvlan",
            "master": master,
            "ipam": {"type": "host-local", "subnet": lab.subnet4, "dataDir": str(lab.ipam_dir)},
        }
        lab.write_conflist("bwnet", [macvlan, bandwidth(**LIMITS)])
        netlist = load_network_conf(str(lab.conf_dir), "bwnet")
        ns = make_netns()
        rt = RuntimeConf(ns.name, ns.path, "eth0")
        runtime = cni(lab)
        with pytest.raises(CniError, match=r"is a macvlan device: bandwidth .* needs a veth-based main plugin") as err:
            runtime.add_network_list(netlist, rt)
        assert err.value.code == 7
        runtime.del_network_list(netlist, rt)
    finally:
        run("ip", "link", "del", master, check=False)
