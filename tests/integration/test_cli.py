"""`pycni add|check|del|status|gc|version` against Debian's reference plugins.

The CLI is driven as a user would, as a subprocess with cnitool's
environment variables.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pycni.cli.cnitool import container_id_for
from tests.support.cnilab import CniLab
from tests.support.host import ip_json, link_exists, ping, run

FIXTURES = Path(__file__).parent / "fixtures"


def pycni(lab: CniLab, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pycni", *args], capture_output=True, text=True,
                          env=lab.env(**env), timeout=60)


def test_add_check_del_cycle(lab: CniLab, make_netns) -> None:
    lab.write_conflist("clinet", [lab.bridge_plugin(), {"type": "tuning", "mtu": 1400}])
    ns = make_netns()

    added = pycni(lab, "add", "clinet", ns.path)
    assert added.returncode == 0, added.stderr
    result = json.loads(added.stdout)
    assert result["cniVersion"] == "1.0.0"
    address = result["ips"][0]["address"]
    assert result["interfaces"][result["ips"][0]["interface"]]["sandbox"] == ns.path
    link = ip_json("link", "show", "dev", "eth0", netns=ns.name)[0]
    assert link["mtu"] == 1400
    assert ping(lab.gateway4, ns.name)

    checked = pycni(lab, "check", "clinet", ns.path)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout == ""

    assert (lab.cache_dir / "results" / f"clinet-{container_id_for(ns.path)}-eth0").exists()
    for _ in range(2):  # DEL is idempotent
        deleted = pycni(lab, "del", "clinet", ns.path)
        assert deleted.returncode == 0, deleted.stderr
    assert not link_exists("eth0", ns.name)
    assert address.split("/")[0] not in lab.reserved_ips("clinet")


def test_ifname_flag_and_cni_args(lab: CniLab, make_netns) -> None:
    lab.write_conflist("clinet", [lab.bridge_plugin()])
    ns = make_netns()
    wanted = lab.gateway4.rsplit(".", 1)[0] + ".77"
    added = pycni(lab, "add", "clinet", ns.path, "-i", "net1", CNI_ARGS=f"IgnoreUnknown=1;IP={wanted}")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["ips"][0]["address"] == f"{wanted}/24"
    assert link_exists("net1", ns.name)
    assert pycni(lab, "del", "clinet", ns.path, "-i", "net1").returncode == 0
    assert not link_exists("net1", ns.name)


def test_failing_plugin_is_one_line_and_nonzero(lab: CniLab, make_netns) -> None:
    lab.install_python_plugin("fail", FIXTURES / "failing_plugin.py")
    lab.write_conflist("clinet", [lab.bridge_plugin(), {"type": "fail", "failCode": 7, "failMsg": "bad thing"}])
    ns = make_netns()
    added = pycni(lab, "add", "clinet", ns.path)
    assert added.returncode == 1
    assert added.stdout == ""
    lines = added.stderr.strip().splitlines()
    assert len(lines) == 1, added.stderr
    assert "bad thing" in lines[0] and "code 7" in lines[0] and 'type="fail"' in lines[0]
    assert pycni(lab, "del", "clinet", ns.path).returncode == 0
    assert lab.reserved_ips("clinet") == []


def test_unknown_network_and_bad_cap_args_are_clear(lab: CniLab, make_netns) -> None:
    ns = make_netns()
    missing = pycni(lab, "add", "nosuchnet", ns.path)
    assert missing.returncode == 1 and "nosuchnet" in missing.stderr and "Traceback" not in missing.stderr
    lab.write_conflist("clinet", [lab.bridge_plugin()])
    bad = pycni(lab, "add", "clinet", ns.path, CAP_ARGS="[1,2]")
    assert bad.returncode == 1 and "CAP_ARGS" in bad.stderr


def test_gc_collects_attachments_whose_netns_is_gone(lab: CniLab, make_netns) -> None:
    lab.write_conflist("clinet", [lab.bridge_plugin()])
    alive, dead = make_netns(), make_netns()
    ips = {}
    for ns in (alive, dead):
        out = pycni(lab, "add", "clinet", ns.path)
        assert out.returncode == 0, out.stderr
        ips[ns.name] = json.loads(out.stdout)["ips"][0]["address"].split("/")[0]
    run("ip", "netns", "delete", dead.name)

    gc = pycni(lab, "gc", "clinet")
    assert gc.returncode == 0, gc.stderr
    assert lab.reserved_ips("clinet") == [ips[alive.name]]
    assert ping(lab.gateway4, alive.name)  # the live pod is untouched
    assert pycni(lab, "del", "clinet", alive.path).returncode == 0


def test_status_and_version(lab: CniLab) -> None:
    lab.write_conflist("clinet", [lab.bridge_plugin()])
    assert pycni(lab, "status", "clinet").returncode == 0
    # Debian's plugins (1.1.1) predate STATUS: the plugin's own refusal and code come through
    lab.write_conflist("newnet", [lab.bridge_plugin()], version="1.1.0")
    status = pycni(lab, "status", "newnet")
    assert status.returncode == 1 and "(code " in status.stderr and "Traceback" not in status.stderr
    version = pycni(lab, "version", "bridge")
    assert version.returncode == 0 and "1.0.0" in version.stdout
    own = pycni(lab, "version")
    assert own.returncode == 0 and "1.1.0" in own.stdout
