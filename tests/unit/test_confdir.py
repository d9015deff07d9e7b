"""Config discovery: file order, legacy .conf promotion, skipping bad files, sibling-directory plugins."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from pycni.runtime.confdir import (
    NoConfigsFound,
    NotFound,
    conf_files,
    load_all,
    load_file,
    load_network_conf,
    sibling_plugins,
)
from pycni.spec.config import conflist_from_bytes
from pycni.spec.errors import DecodingFailure, InvalidConfig


def write(path: Path, content: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def conflist(name: str, *types: str, **extra: Any) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": name, **extra, "plugins": [{"type": t} for t in types or ("bridge",)]}


def single(name: str, plugin_type: str = "bridge") -> dict[str, Any]:
    return {"cniVersion": "0.4.0", "name": name, "type": plugin_type}


# --------------------------------------------------------------------------
# conf_files
# --------------------------------------------------------------------------


def test_conf_files_sorted_filtered_files_only(tmp_path: Path) -> None:
    for name in ("20-b.conflist", "10-a.conf", "30-c.json", "notes.txt", "conf", "99.conf.bak"):
        write(tmp_path / name, "{}")
    (tmp_path / "05-dir.conf").mkdir()
    os.symlink(tmp_path / "10-a.conf", tmp_path / "15-link.conf")
    assert [os.path.basename(p) for p in conf_files(str(tmp_path))] == [
        "10-a.conf",
        "15-link.conf",
        "20-b.conflist",
        "30-c.json",
    ]
    assert [os.path.basename(p) for p in conf_files(str(tmp_path), (".conflist",))] == ["20-b.conflist"]


def test_conf_files_missing_dir_is_empty(tmp_path: Path) -> None:
    assert conf_files(str(tmp_path / "nope")) == []


# --------------------------------------------------------------------------
# load_network_conf (libcni LoadNetworkConf)
# --------------------------------------------------------------------------


def test_conflists_win_over_single_configs(tmp_path: Path) -> None:
    write(tmp_path / "00-net.conf", single("net", "macvlan"))
    path = write(tmp_path / "50-net.conflist", conflist("net", "bridge", "tuning"))
    got = load_network_conf(str(tmp_path), "net")
    assert [p.type for p in got.plugins] == ["bridge", "tuning"]
    assert got.raw_bytes == path.read_bytes()


def test_first_conflist_with_the_name_wins(tmp_path: Path) -> None:
    write(tmp_path / "20-x.conflist", conflist("net", "second"))
    write(tmp_path / "10-x.conflist", conflist("net", "first"))
    assert load_network_conf(str(tmp_path), "net").plugins[0].type == "first"


def test_single_config_promoted(tmp_path: Path) -> None:
    write(tmp_path / "10-other.conflist", conflist("other"))
    write(tmp_path / "20-net.json", single("net", "ptp"))
    got = load_network_conf(str(tmp_path), "net")
    assert (got.name, got.cni_version, [p.type for p in got.plugins]) == ("net", "0.4.0", ["ptp"])
    # the cached bytes read back as a conflist
    assert conflist_from_bytes(got.raw_bytes) == got


def test_not_found_with_conflists_only(tmp_path: Path) -> None:
    write(tmp_path / "10-other.conflist", conflist("other"))
    with pytest.raises(NotFound) as err:
        load_network_conf(str(tmp_path), "net")
    assert err.value.msg == f'no net configuration with name "net" in {tmp_path}'
    assert (err.value.directory, err.value.name) == (str(tmp_path), "net")


def test_not_found_among_single_configs(tmp_path: Path) -> None:
    write(tmp_path / "10-other.conf", single("other"))
    with pytest.raises(NotFound):
        load_network_conf(str(tmp_path), "net")


@pytest.mark.parametrize("make_dir", [True, False])
def test_no_configs_found(tmp_path: Path, make_dir: bool) -> None:
    directory = tmp_path / "net.d"
    if make_dir:
        directory.mkdir()
        write(directory / "README", "not a config")
    with pytest.raises(NoConfigsFound) as err:
        load_network_conf(str(directory), "net")
    assert err.value.msg == f"no net configurations found in {directory} (looking for network 'net')"


def test_a_broken_file_aborts_the_search_and_names_the_file(tmp_path: Path) -> None:
    bad = write(tmp_path / "10-bad.conflist", "{not json")
    write(tmp_path / "20-net.conflist", conflist("net"))
    with pytest.raises(DecodingFailure) as err:
        load_network_conf(str(tmp_path), "net")
    assert err.value.msg.startswith(f"{bad}: ")


def test_errors_keep_class_and_name_the_field(tmp_path: Path) -> None:
    bad = write(tmp_path / "10-net.conflist", {"name": "net", "plugins": [{"type": "a"}, {}]})
    with pytest.raises(InvalidConfig) as err:
        load_network_conf(str(tmp_path), "net")
    assert err.value.msg == f"{bad}: plugins[1].type: missing"


# --------------------------------------------------------------------------
# sibling-directory plugins
# --------------------------------------------------------------------------


def test_sibling_plugins_appended_in_file_order(tmp_path: Path) -> None:
    write(tmp_path / "10-net.conflist", conflist("net", "bridge"))
    write(tmp_path / "net" / "20-tuning.conf", {"type": "tuning"})
    write(tmp_path / "net" / "10-portmap.conf", {"type": "portmap", "capabilities": {"portMappings": True}})
    write(tmp_path / "net" / "30-ignored.json", {"type": "ignored"})
    got = load_network_conf(str(tmp_path), "net")
    assert [p.type for p in got.plugins] == ["bridge", "portmap", "tuning"]


def test_sibling_plugins_only_when_not_load_only_inlined(tmp_path: Path) -> None:
    write(tmp_path / "10-net.conflist", conflist("net", "bridge", loadOnlyInlinedPlugins=True))
    write(tmp_path / "net" / "20-tuning.conf", {"type": "tuning"})
    assert [p.type for p in load_network_conf(str(tmp_path), "net").plugins] == ["bridge"]


def test_plugins_entirely_from_sibling_directory(tmp_path: Path) -> None:
    write(tmp_path / "10-net.conflist", {"cniVersion": "1.1.0", "name": "net"})
    write(tmp_path / "net" / "10-bridge.conf", {"type": "bridge"})
    assert [p.type for p in load_network_conf(str(tmp_path), "net").plugins] == ["bridge"]


def test_no_plugins_anywhere(tmp_path: Path) -> None:
    path = write(tmp_path / "10-net.conflist", {"cniVersion": "1.1.0", "name": "net"})
    with pytest.raises(InvalidConfig, match="no plugin configs found"):
        load_file(str(path))


def test_bad_sibling_plugin_names_its_file(tmp_path: Path) -> None:
    write(tmp_path / "10-net.conflist", conflist("net"))
    bad = write(tmp_path / "net" / "10-x.conf", {"notype": 1})
    with pytest.raises(InvalidConfig) as err:
        load_network_conf(str(tmp_path), "net")
    assert err.value.msg == f"{bad}: type: missing"


def test_sibling_plugins_of_other_networks_are_not_read(tmp_path: Path) -> None:
    write(tmp_path / "10-other.conflist", conflist("other"))
    write(tmp_path / "other" / "10-x.conf", "{broken")
    write(tmp_path / "20-net.conflist", conflist("net"))
    assert load_network_conf(str(tmp_path), "net").name == "net"


def test_sibling_plugins_missing_dir(tmp_path: Path) -> None:
    assert sibling_plugins(str(tmp_path), "net") == ()


# --------------------------------------------------------------------------
# load_all (runtime-style discovery)
# --------------------------------------------------------------------------


def test_load_all_lexical_order_skipping_invalid(tmp_path: Path) -> None:
    write(tmp_path / "99-loopback.conf", {"cniVersion": "1.0.0", "name": "lo", "type": "loopback"})
    write(tmp_path / "10-main.conflist", conflist("main", "bridge", "portmap"))
    write(tmp_path / "20-broken.conflist", "{")
    write(tmp_path / "30-notype.conf", {"name": "x"})
    write(tmp_path / "40-second.json", single("second", "ptp"))
    write(tmp_path / "50-main-again.conflist", conflist("main", "macvlan"))

    loaded, skipped = load_all(str(tmp_path))

    assert [c.name for c in loaded] == ["main", "second", "lo"]
    assert [p.type for p in loaded[0].plugins] == ["bridge", "portmap"]  # the default network
    assert [os.path.basename(s.path) for s in skipped] == [
        "20-broken.conflist",
        "30-notype.conf",
        "50-main-again.conflist",
    ]
    assert skipped[0].error.code == 6
    assert "type: missing" in skipped[1].reason
    assert "duplicate network name" in skipped[2].reason


def test_load_all_empty(tmp_path: Path) -> None:
    assert load_all(str(tmp_path / "missing")) == ([], [])
