"""tuning's config: precedence of the MAC sources, args.cni overrides, the sysctl safety rules, the backup format."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from pycni import skel
from pycni.plugins.tuning.backup import Backup, backup_path, list_backups, read_backup, write_backup
from pycni.plugins.tuning.conf import (
    DEFAULT_DATA_DIR,
    check_allowlist,
    load_json_keeping_duplicates,
    parse_conf,
    resolve_sysctl,
)
from pycni.plugins.tuning.plugin import _with_mac
from pycni.registry import load_plugin
from pycni.spec.errors import InvalidConfig
from pycni.spec.result import Interface, Result

PLUGIN = load_plugin("tuning")


def conf(**config: Any) -> Any:
    kw = {k: config.pop(k) for k in ("cni_args", "allowlist_text") if k in config}
    return parse_conf({"name": "n", "type": "tuning", **config}, ifname="eth0", **kw)


# -- sysctl keys -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "ifname", "path"),
    [
        ("net.core.somaxconn", "eth0", "net/core/somaxconn"),
        ("net.ipv4.conf.IFNAME.arp_filter", "eth0", "net/ipv4/conf/eth0/arp_filter"),
        ("net.ipv4.conf.IFNAME.arp_filter", "eth0.100", "net/ipv4/conf/eth0.100/arp_filter"),
        ("net.ipv6.conf.all.disable_ipv6", "eth0", "net/ipv6/conf/all/disable_ipv6"),
        ("net.ipv4.ip_local_port_range", "eth0", "net/ipv4/ip_local_port_range"),
        ("net.unix.max_dgram_qlen", "eth0", "net/unix/max_dgram_qlen"),
        ("net.core.xfrm_larval_drop", "eth0", "net/core/xfrm_larval_drop"),
        ("net.netfilter.nf_conntrack_tcp_timeout_established", "eth0",
         "net/netfilter/nf_conntrack_tcp_timeout_established"),
        ("net.ipv4.conf.IFNAME.IFNAME_x", "eth0", "net/ipv4/conf/eth0/IFNAME_x"),
    ],
)
def test_allowed_keys_and_their_paths(key: str, ifname: str, path: str) -> None:
    assert resolve_sysctl(key, ifname) == path


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("kernel.hostname", "host-wide"),
        ("vm.swappiness", "host-wide"),
        ("fs.file-max", "host-wide"),
        ("net.core.rmem_max", "not per network namespace on every kernel"),
        ("net.core.netdev_max_backlog", "not per network namespace"),
        ("net.netfilter.nf_conntrack_max", "host-wide limit"),
        ("net.bridge.bridge-nf-call-iptables", "'net.bridge' is not a known per-network-namespace"),
        ("net.nf_conntrack_max", "expected net.<group>.<name>"),
        ("net.ipv4..ip_forward", "empty component"),
        ("net.ipv4.ip_forward.", "empty component"),
        (".net.ipv4.ip_forward", "empty component"),
        ("net/ipv4/ip_forward", "'/' is not allowed"),
        ("net.ipv4.conf.eth0/../../../kernel.hostname", "'/' is not allowed"),
        ("net.ipv4.conf.*.rp_filter", "characters other than"),
        ("net.ipv4.conf.a b.rp_filter", "characters other than"),
        ("", "empty key"),
    ],
)
def test_refused_keys_name_the_key_and_why(key: str, why: str) -> None:
    with pytest.raises(InvalidConfig) as err:
        resolve_sysctl(key, "eth0")
    assert err.value.code == 7
    assert err.value.msg.startswith(f'sysctl["{key}"]: ')
    assert why in err.value.msg


def test_refused_key_through_parse_conf() -> None:
    with pytest.raises(InvalidConfig, match=r'sysctl\["kernel.pid_max"\]'):
        conf(sysctl={"net.core.somaxconn": "1", "kernel.pid_max": "1"})


def test_allowlist_file_semantics() -> None:
    allow = "^net\\.core\\.\n\nIFNAME\\.arp_\n"
    check_allowlist(["net.core.somaxconn", "net.ipv4.conf.IFNAME.arp_filter"], allow)
    with pytest.raises(InvalidConfig, match=r'sysctl\["net.ipv4.ip_forward"\]: not allowed by /etc/cni/tuning'):
        check_allowlist(["net.ipv4.ip_forward"], allow)
    check_allowlist(["anything"], None)  # no file: no restriction
    with pytest.raises(InvalidConfig, match="invalid regular expression"):
        check_allowlist(["x"], "(")


def test_two_keys_naming_one_sysctl_are_refused() -> None:
    with pytest.raises(InvalidConfig, match="names the same sysctl"):
        conf(sysctl={"net.ipv4.conf.IFNAME.arp_filter": "1", "net.ipv4.conf.eth0.arp_filter": "0"})


def test_duplicate_json_keys_are_visible() -> None:
    data = b'{"name": "n", "sysctl": {"net.core.somaxconn": "1", "net.core.somaxconn": "2"}}'
    with pytest.raises(InvalidConfig, match=r'sysctl: key "net\.core\.somaxconn" appears more than once'):
        parse_conf(load_json_keeping_duplicates(data), ifname="eth0")


# -- attributes and precedence -----------------------------------------------------


def test_defaults() -> None:
    c = conf()
    assert (c.sysctls, c.mac, c.mtu, c.promisc, c.allmulti, c.txqlen) == ((), "", 0, False, None, None)
    assert c.data_dir == DEFAULT_DATA_DIR == "/run/cni/tuning"
    assert not c.changes_link


def test_mac_precedence_config_env_runtime_args() -> None:
    assert conf(mac="C2:00:00:00:00:01").mac == "c2:00:00:00:00:01"
    assert conf(mac="c2:00:00:00:00:01", cni_args="IgnoreUnknown=1;MAC=c2:00:00:00:00:02").mac == "c2:00:00:00:00:02"
    runtime = {"runtimeConfig": {"mac": "c2:00:00:00:00:03"}}
    assert conf(mac="c2:00:00:00:00:01", cni_args="MAC=c2:00:00:00:00:02", **runtime).mac == "c2:00:00:00:00:03"
    args = {"args": {"cni": {"mac": "c2:00:00:00:00:04"}}}
    assert conf(cni_args="MAC=c2:00:00:00:00:02", **runtime, **args).mac == "c2:00:00:00:00:04"


def test_cni_args_unknown_keys_are_tolerated() -> None:
    assert conf(cni_args="K8S_POD_NAME=x;MAC=c2:00:00:00:00:02").mac == "c2:00:00:00:00:02"


def test_args_cni_overrides_and_sysctl_merge() -> None:
    c = conf(
        sysctl={"net.core.somaxconn": "100", "net.ipv4.ip_forward": "1"},
        mtu=1400,
        promisc=True,
        allmulti=False,
        txQLen=10,
        args={"cni": {"sysctl": {"net.core.somaxconn": "200"}, "mtu": 1300, "promisc": False, "allmulti": True,
                      "txQLen": 20}},
    )
    assert {s.key: s.value for s in c.sysctls} == {"net.core.somaxconn": "200", "net.ipv4.ip_forward": "1"}
    assert (c.mtu, c.promisc, c.allmulti, c.txqlen) == (1300, False, True, 20)
    assert c.changes_link


@pytest.mark.parametrize(
    ("config", "path"),
    [
        ({"mac": "nope"}, "mac"),
        ({"mac": 5}, "mac"),
        ({"mtu": "1500"}, "mtu"),
        ({"mtu": -1}, "mtu"),
        ({"promisc": "yes"}, "promisc"),
        ({"allmulti": 1}, "allmulti"),
        ({"txQLen": True}, "txQLen"),
        ({"sysctl": ["net.core.somaxconn"]}, "sysctl"),
        ({"sysctl": {"net.core.somaxconn": 5}}, 'sysctl["net.core.somaxconn"]'),
        ({"dataDir": "relative/dir"}, "dataDir"),
        ({"args": {"cni": {"mac": "zz"}}}, "args.cni.mac"),
        ({"args": {"cni": {"sysctl": {"kernel.x": "1"}}}}, 'sysctl["kernel.x"]'),
        ({"runtimeConfig": {"mac": "zz"}}, "runtimeConfig.mac"),
        ({"cni_args": "MAC=zz"}, "CNI_ARGS MAC"),
    ],
)
def test_bad_values_name_their_path(config: dict[str, Any], path: str) -> None:
    with pytest.raises(InvalidConfig) as err:
        conf(**config)
    assert err.value.msg.startswith(path)


def test_keys_match_case_insensitively_like_go() -> None:
    assert conf(MTU=1400, TxQlen=5).mtu == 1400


# -- backup file and result ------------------------------------------------------------


def test_backup_round_trip_keeps_the_reference_fields(tmp_path: Any) -> None:
    backup = Backup(mac="02:00:00:00:00:01", promisc=False, mtu=1500, allmulti=True, txqlen=0, network="n",
                    container_id="c", ifname="eth0", sysctls={"net/core/somaxconn": ("4096", "100")})
    path = backup_path(str(tmp_path), "c", "eth0")
    assert path == f"{tmp_path}/c_eth0.json"
    write_backup(path, backup)
    raw = json.loads((tmp_path / "c_eth0.json").read_text())
    # what Go's tuning DEL reads
    assert {k: raw[k] for k in ("mac", "promisc", "mtu", "allmulti", "txQLen")} == {
        "mac": "02:00:00:00:00:01", "promisc": False, "mtu": 1500, "allmulti": True, "txQLen": 0}
    assert read_backup(path) == backup
    assert list_backups(str(tmp_path)) == [(path, backup)]


def test_backup_written_by_the_reference_is_read(tmp_path: Any) -> None:
    path = tmp_path / "c_eth0.json"
    path.write_text('{"mac": "02:00:00:00:00:09", "mtu": 9000}')
    got = read_backup(str(path))
    assert got is not None and (got.mac, got.mtu, got.promisc, got.network) == ("02:00:00:00:00:09", 9000, None, "")
    assert read_backup(str(tmp_path / "missing.json")) is None


def test_result_mac_updated_only_for_the_container_interface() -> None:
    result = Result(cni_version="1.1.0", interfaces=(
        Interface(name="br0", mac="02:00:00:00:00:01"),
        Interface(name="eth0", mac="02:00:00:00:00:02"),  # a host link that happens to share the name
        Interface(name="eth0", mac="02:00:00:00:00:03", sandbox="/run/netns/x"),
    ))
    updated = _with_mac(result, "eth0", "c2:00:00:00:00:00")
    assert [i.mac for i in updated.interfaces] == ["02:00:00:00:00:01", "02:00:00:00:00:02", "c2:00:00:00:00:00"]


# -- the plugin object ------------------------------------------------------------------


def test_plugin_speaks_every_version_and_imports_light() -> None:
    assert PLUGIN.name == "tuning" and "0.1.0" in PLUGIN.versions and "1.1.0" in PLUGIN.versions
    code = ("import sys, pycni.plugins.tuning\n"
            "assert not {'pyroute2', 'pycni.plugins.tuning.plugin', 'pycni.spec.result'} & set(sys.modules)\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_add_without_prev_result_is_code_7() -> None:
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c", "CNI_NETNS": "/run/netns/none", "CNI_IFNAME": "eth0",
           "CNI_PATH": "/x"}
    out = skel.dispatch(PLUGIN, env, b'{"cniVersion": "1.0.0", "name": "n", "type": "tuning", "mtu": 1400}')
    assert out.exit_code == 1 and json.loads(out.stdout)["code"] == 7
    assert "prevResult" in json.loads(out.stdout)["msg"]
