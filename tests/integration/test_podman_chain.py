"""The chain podman writes (bridge + portmap + firewall + tuning) with pycni's meta plugins.

Parametrized over whose bridge (+ host-local) heads the chain, Go's or
pycni's: pycni's meta plugins must chain behind either. Proven with TCP
through the mapped host port, a whole-chain CHECK, and a DEL that leaves
none of the attachment's rules behind.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
import uuid
from typing import Any

import pytest

from pycni.plugins.portmap.nft_io import NftBackend
from pycni.runtime import CniConfig, RuntimeConf, load_network_conf
from tests.support.cnilab import CniLab
from tests.support.host import link_exists, run


def owned_rules(container_id: str) -> list[str]:
    nft = run("nft", "list", "ruleset", check=False).stdout.splitlines()
    ipt = run("iptables-save", check=False).stdout.splitlines()
    return [line for line in nft + ipt if container_id in line]


def fetch(url: str) -> str:
    no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy: local addresses
    with no_proxy.open(url, timeout=3) as answer:
        return answer.read().decode()


@pytest.mark.parametrize("bridge_impl", ["go", "pycni"])
def test_podman_chain_with_pycni_meta_plugins(lab: CniLab, make_netns: Any, tmp_path: Any, bridge_impl: str) -> None:
    lab.install_pycni("portmap", "firewall", "tuning", *(("bridge", "host-local") if bridge_impl == "pycni" else ()))
    bridge = lab.bridge_plugin()
    bridge.update(ipMasq=True, hairpinMode=True)
    plugins = [
        bridge,
        {"type": "portmap", "capabilities": {"portMappings": True}},
        {"type": "firewall", "backend": ""},
        {"type": "tuning"},
    ]
    name = f"podchain-{uuid.uuid4().hex[:6]}"
    lab.write_conflist(name, plugins, version="0.4.0")  # the version podman 4.3 writes
    netlist = load_network_conf(str(lab.conf_dir), name)
    cni = CniConfig(lab.cni_path, cache_dir=str(lab.cache_dir))
    ns = make_netns()
    host_port = 20000 + uuid.uuid4().int % 20000
    rt = RuntimeConf(
        container_id=uuid.uuid4().hex,
        netns=ns.path,
        ifname="eth0",
        args=(("IgnoreUnknown", "1"), ("K8S_POD_NAME", "web")),
        capability_args={"portMappings": [{"hostPort": host_port, "containerPort": 8080, "protocol": "tcp"}]},
    )
    (tmp_path / "index.html").write_text("hello from the pod")
    server = None
    try:
        result = cni.add_network_list(netlist, rt)
        assert result.to_wire()["cniVersion"] == "0.4.0"
        server = subprocess.Popen(
            ["ip", "netns", "exec", ns.name, sys.executable, "-m", "http.server", "8080", "--bind", "0.0.0.0"],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        pod_ip = str(result.ips[0].address.ip)
        deadline = time.monotonic() + 10
        while True:  # wait for the server to listen
            try:
                assert fetch(f"http://{pod_ip}:8080/index.html") == "hello from the pod"
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        # through portmap: the host's own address on the bridge, and localhost
        assert fetch(f"http://{lab.gateway4}:{host_port}/index.html") == "hello from the pod"
        assert fetch(f"http://127.0.0.1:{host_port}/index.html") == "hello from the pod"
        assert owned_rules(rt.container_id)  # firewall and portmap rules carry the attachment's tag

        cni.check_network_list(netlist, rt)  # the whole chain, as a runtime would

        cni.del_network_list(netlist, rt)
        assert not link_exists("eth0", ns.name)
        assert lab.reserved_ips(name) == []
        assert owned_rules(rt.container_id) == []
    finally:
        if server is not None:
            server.kill()
            server.wait()
        cni.del_network_list(netlist, rt)
        NftBackend().gc(name, set())  # the network's maps outlive its last DEL (as the reference's chains do)
