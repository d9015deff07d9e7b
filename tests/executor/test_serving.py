"""The executor serves plugin calls exactly as the in-process path would, for callers in any netns."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.executor.running import REPO_ROOT, RunningExecutor
from tests.executor.shims import NO_EXECUTOR, bridge_config, install_slow_ipam, normalized, run_shim, shim_env
from tests.support.cnilab import CniLab
from tests.support.host import ip_json, link_exists, run
from tests.support.netns import Netns


def served_calls(
    executor: RunningExecutor, command: str, container_id: str = "", *, at_least: int = 1
) -> list[dict[str, Any]]:
    """The executor's log of calls of ``command``, waiting (up to 10 s) until ``at_least`` are there.

    The daemon logs a call right after answering it, so a test that has its
    answers may still be ahead of the log.
    """

    def matching() -> list[dict[str, Any]]:
        return [
            e for e in executor.events("call")
            if e["command"] == command and (not container_id or e["container_id"] == container_id)
        ]

    deadline = time.monotonic() + 10
    while len(found := matching()) < at_least and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def both_paths(lab: CniLab, executor: RunningExecutor, plugin_type: str, env: dict[str, str],
               stdin: bytes | dict[str, Any]) -> tuple[subprocess.CompletedProcess[bytes], ...]:
    forwarded = run_shim(lab, plugin_type, {**env, "PYCNI_EXECUTOR_SOCKET": str(executor.socket)}, stdin)
    in_process = run_shim(lab, plugin_type, {**env, "PYCNI_EXECUTOR_SOCKET": NO_EXECUTOR}, stdin)
    return forwarded, in_process


# Requests whose answer is fully determined: both paths must print the same bytes and exit alike.
DETERMINISTIC: dict[str, Callable[[CniLab, Netns], tuple[str, dict[str, str], bytes | dict[str, Any]]]] = {
    "version": lambda lab, ns: ("VERSION", {}, b'{"cniVersion":"0.4.0"}'),
    "version of an unknown cniVersion": lambda lab, ns: ("VERSION", {}, b'{"cniVersion":"9.9.9"}'),
    "bad json": lambda lab, ns: ("ADD", {"CNI_CONTAINERID": "c1", "CNI_NETNS": ns.path}, b"{not json"),
    "missing env": lambda lab, ns: ("ADD", {}, bridge_config(lab)),
    "own netns": lambda lab, ns: ("ADD", {"CNI_CONTAINERID": "c1", "CNI_NETNS": "/proc/1/ns/net"}, bridge_config(lab)),
    "unsupported version": lambda lab, ns: ("ADD", {"CNI_CONTAINERID": "c1", "CNI_NETNS": ns.path},
                                            bridge_config(lab, version="9.9.9")),
    "invalid config": lambda lab, ns: ("ADD", {"CNI_CONTAINERID": "c1", "CNI_NETNS": ns.path},
                                       bridge_config(lab, mtu="big")),
    "invalid ipam": lambda lab, ns: ("ADD", {"CNI_CONTAINERID": "c1", "CNI_NETNS": ns.path},
                                     {**bridge_config(lab), "ipam": {"type": "host-local", "subnet": "10.0.0.0/33"}}),
    "del of nothing": lambda lab, ns: ("DEL", {"CNI_CONTAINERID": "c1", "CNI_NETNS": ns.path}, bridge_config(lab)),
    "del without netns": lambda lab, ns: ("DEL", {"CNI_CONTAINERID": "c1"}, bridge_config(lab)),
    "status": lambda lab, ns: ("STATUS", {}, bridge_config(lab, version="1.1.0")),
    "delegate error and stderr": lambda lab, ns: ("ADD", {"CNI_CONTAINERID": "c1", "CNI_NETNS": ns.path},
                                                  {**bridge_config(lab), "ipam": {"type": "chatty-ipam"}}),
}

CHATTY_IPAM = """#!/bin/sh
echo "chatty-ipam: $CNI_COMMAND for $CNI_CONTAINERID" >&2
echo '{"cniVersion": "1.0.0", "code": 11, "msg": "pool busy", "details": "try later"}'
exit 1
"""


@pytest.mark.parametrize("case", sorted(DETERMINISTIC))
def test_both_paths_print_the_same_bytes(lab: CniLab, make_netns: Callable[[], Netns], executor: RunningExecutor,
                                         case: str) -> None:
    lab.install_pycni("bridge", "host-local")
    (lab.bin_dir / "chatty-ipam").write_text(CHATTY_IPAM)
    (lab.bin_dir / "chatty-ipam").chmod(0o755)
    ns = make_netns()
    command, env, stdin = DETERMINISTIC[case](lab, ns)
    base = shim_env(lab, command, socket="", **env)

    forwarded, in_process = both_paths(lab, executor, "bridge", base, stdin)

    assert (forwarded.returncode, forwarded.stdout, forwarded.stderr) == (
        in_process.returncode, in_process.stdout, in_process.stderr)
    if case == "delegate error and stderr":
        assert b"chatty-ipam: ADD for c1" in forwarded.stderr and b"pool busy" in forwarded.stdout
    assert served_calls(executor, command), f"{case}: not served by the executor: {executor.events()[-3:]}"


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_add_check_del_through_the_executor(lab: CniLab, make_netns: Callable[[], Netns], executor: RunningExecutor,
                                            version: str) -> None:
    lab.install_pycni("bridge", "host-local")
    a, b = make_netns(), make_netns()
    conf = bridge_config(lab, version=version)
    via = shim_env(lab, "ADD", socket=str(executor.socket), container_id="ca", netns=a.path)
    local = shim_env(lab, "ADD", socket=NO_EXECUTOR, container_id="cb", netns=b.path)

    added = run_shim(lab, "bridge", via, conf)
    reference = run_shim(lab, "bridge", local, conf)

    assert added.returncode == 0, added.stdout + added.stderr
    assert reference.returncode == 0, reference.stdout + reference.stderr
    assert normalized(json.loads(added.stdout)) == normalized(json.loads(reference.stdout))
    assert [e["exit_code"] for e in served_calls(executor, "ADD", "ca")] == [0]
    assert ip_json("addr", "show", "dev", "eth0", netns=a.name)[0]["addr_info"]
    assert sorted(lab.reserved_ips("exnet")) == sorted(
        ip["address"].split("/")[0] for out in (added, reference) for ip in json.loads(out.stdout)["ips"])

    if version not in ("0.3.1",):  # CHECK exists from 0.4.0
        checked = run_shim(lab, "bridge", {**via, "CNI_COMMAND": "CHECK"},
                           {**conf, "prevResult": json.loads(added.stdout)})
        assert (checked.returncode, checked.stdout) == (0, b""), checked.stdout
    for env in (via, local):
        gone = run_shim(lab, "bridge", {**env, "CNI_COMMAND": "DEL"}, conf)
        assert (gone.returncode, gone.stdout) == (0, b""), gone.stdout
    assert lab.reserved_ips("exnet") == []
    assert not link_exists("eth0", netns=a.name)
    assert [e["exit_code"] for e in served_calls(executor, "DEL", "ca")] == [0]


def test_a_caller_in_a_node_namespace_gets_host_side_objects_in_its_namespace(
    lab: CniLab, make_netns: Callable[[], Netns], executor: RunningExecutor
) -> None:
    """The runtime library runs inside a 'node' netns (ip netns exec); the bridge must appear there."""
    lab.install_pycni("bridge", "host-local")
    lab.write_conflist("exnet", [lab.bridge_plugin()])
    node, pod = make_netns(), make_netns()
    script = (
        "import sys\n"
        "from pycni.runtime import CniConfig, RuntimeConf, load_network_conf\n"
        f"net = load_network_conf({str(lab.conf_dir)!r}, 'exnet')\n"
        f"cni = CniConfig({lab.cni_path!r}, cache_dir={str(lab.cache_dir)!r})\n"
        f"rt = RuntimeConf(container_id='podx', netns={pod.path!r}, ifname='eth0')\n"
        "if sys.argv[1] == 'add':\n"
        "    print(cni.add_network_list(net, rt).to_wire()['ips'][0]['address'])\n"
        "else:\n"
        "    cni.del_network_list(net, rt)\n"
    )

    def in_node(step: str) -> str:
        out = subprocess.run(["ip", "netns", "exec", node.name, sys.executable, "-c", script, step],
                             env={**lab.env(), **executor.env(), "PYTHONPATH": str(REPO_ROOT)},
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    address = in_node("add")

    assert link_exists(lab.bridge, netns=node.name), "the bridge must be in the caller's (node) namespace"
    assert not link_exists(lab.bridge), "the bridge must not be in the executor's namespace"
    ports = [link for link in ip_json("link", "show", "master", lab.bridge, netns=node.name)]
    assert len(ports) == 1 and ports[0]["ifname"].startswith("veth")
    assert served_calls(executor, "ADD", "podx"), "the call was not served by the executor"
    assert address.startswith(lab.subnet4.rsplit(".", 1)[0])
    assert run("ping", "-c", "1", "-W", "2", lab.gateway4, netns=pod.name, check=False).returncode == 0

    in_node("del")
    assert ip_json("link", "show", "master", lab.bridge, netns=node.name) == []
    assert lab.reserved_ips("exnet") == []
    assert served_calls(executor, "DEL", "podx")


def test_a_netns_path_that_is_another_file_for_the_caller_is_declined(
    lab: CniLab, make_netns: Callable[[], Netns], executor: RunningExecutor
) -> None:
    """In the caller's mount namespace /run/netns/B is A's namespace: the executor must not use its own B."""
    lab.install_pycni("bridge", "host-local")
    a, b = make_netns(), make_netns()
    conf = bridge_config(lab)
    prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
              f"mount --bind {a.path} {b.path} && exec \"$0\"", ]
    env = shim_env(lab, "ADD", socket=str(executor.socket), container_id="cx", netns=b.path)

    added = run_shim(lab, "bridge", env, conf, prefix=prefix)

    assert added.returncode == 0, added.stdout + added.stderr
    assert link_exists("eth0", netns=a.name) and not link_exists("eth0", netns=b.name)
    assert [e["reason"] for e in executor.events("refused")] == ["foreign_netns_path"]
    assert not [e for e in executor.events("call") if e["command"] == "ADD"]
    removed = run_shim(lab, "bridge", {**env, "CNI_COMMAND": "DEL"}, conf, prefix=prefix)
    assert removed.returncode == 0, removed.stdout
    assert not link_exists("eth0", netns=a.name)
    assert lab.reserved_ips("exnet") == []


def test_adds_for_different_containers_run_in_parallel(lab: CniLab, make_netns: Callable[[], Netns],
                                                       executor: RunningExecutor) -> None:
    """Three ADDs whose IPAM takes 3 s each finish together, not one after another."""
    lab.install_pycni("bridge", "host-local")
    install_slow_ipam(lab, seconds=3)
    conf = {**bridge_config(lab), "ipam": {"type": "slow-ipam"}}
    pods = [make_netns() for _ in range(3)]
    envs = [shim_env(lab, "ADD", socket=str(executor.socket), container_id=f"par{i}", netns=ns.path,
                     SLOW_IPAM_HOST=str(10 + i)) for i, ns in enumerate(pods)]
    # the bridge and its gateway address exist before the parallel ADDs, as on a node with pods
    warm = shim_env(lab, "ADD", socket=str(executor.socket), container_id="first", netns=make_netns().path)
    assert run_shim(lab, "bridge", warm, bridge_config(lab)).returncode == 0

    started = time.monotonic()
    with ThreadPoolExecutor(3) as pool:
        outs = list(pool.map(lambda env: run_shim(lab, "bridge", env, conf), envs))
    elapsed = time.monotonic() - started

    assert [o.returncode for o in outs] == [0, 0, 0], [o.stdout for o in outs]
    assert elapsed < 6, f"the ADDs ran one after another ({elapsed:.1f}s)"
    assert len(served_calls(executor, "ADD", at_least=4)) == 4
    for env in envs:
        assert run_shim(lab, "bridge", {**env, "CNI_COMMAND": "DEL"}, conf).returncode == 0
    assert run_shim(lab, "bridge", {**warm, "CNI_COMMAND": "DEL"}, bridge_config(lab)).returncode == 0


def test_host_local_through_the_executor_shares_its_data_dir_with_go(lab: CniLab, executor: RunningExecutor) -> None:
    """Parallel ADDs, half by Go's host-local and half by pycni's through the executor: no address twice."""
    lab.install_pycni("host-local")
    conf = {"cniVersion": "1.0.0", "name": "shared", "type": "bridge",
            "ipam": {"type": "host-local", "subnet": lab.subnet4, "dataDir": str(lab.ipam_dir)}}
    go = "/usr/lib/cni/host-local"

    def add(i: int) -> str:
        env = shim_env(lab, "ADD", socket=str(executor.socket), container_id=f"c{i}", netns="/run/netns/none")
        argv = [go] if i % 2 else [str(lab.bin_dir / "host-local")]
        out = subprocess.run(argv, input=json.dumps(conf).encode(), env=env, capture_output=True, timeout=60)
        assert out.returncode == 0, out.stdout
        return str(json.loads(out.stdout)["ips"][0]["address"])

    with ThreadPoolExecutor(8) as pool:
        addresses = list(pool.map(add, range(16)))

    assert len(set(addresses)) == 16
    assert len(lab.reserved_ips("shared")) == 16
    assert len(served_calls(executor, "ADD", at_least=8)) == 8
    for i in range(16):
        env = shim_env(lab, "DEL", socket=str(executor.socket), container_id=f"c{i}", netns="/run/netns/none")
        assert run_shim(lab, "host-local", env, conf).returncode == 0
    assert lab.reserved_ips("shared") == []
