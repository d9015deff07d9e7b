"""The result cache: libcni's byte-level layout, legacy files, tolerance of damage, attachment listing."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from pycni.runtime.cache import CACHE_KIND, CacheEntry, CorruptCacheEntry, ResultCache
from pycni.spec.errors import InvalidEnvironment

CONFIG = b'{"cniVersion":"1.0.0","name":"net1","plugins":[{"type":"bridge"}]}'
RESULT = {"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.5/16"}]}


def entry(network: str = "net1", container_id: str = "ctr1", ifname: str = "eth0", **kw: object) -> CacheEntry:
    return CacheEntry(network, container_id, ifname, **kw)  # type: ignore[arg-type]


def full_entry() -> CacheEntry:
    return entry(
        config=CONFIG,
        netns="/run/netns/x",
        cni_args=(("IgnoreUnknown", "1"), ("K8S_POD_NAME", "web")),
        capability_args={"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]},
        result=RESULT,
    )


def test_write_then_read_back(tmp_path: Path) -> None:
    cache = ResultCache(str(tmp_path))
    cache.write(full_entry())
    assert cache.read("net1", "ctr1", "eth0") == full_entry()


def test_missing_file_reads_as_none(tmp_path: Path) -> None:
    assert ResultCache(str(tmp_path)).read("net1", "ctr1", "eth0") is None


def test_on_disk_layout_matches_libcni(tmp_path: Path) -> None:
    cache = ResultCache(str(tmp_path))
    path = cache.write(full_entry())

    assert path == str(tmp_path / "results" / "net1-ctr1-eth0")
    assert stat.S_IMODE(os.stat(tmp_path / "results").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    raw = Path(path).read_bytes()
    doc = json.loads(raw)
    # Go's struct order, compact encoding.
    assert list(doc) == [
        "kind",
        "containerId",
        "config",
        "ifName",
        "networkName",
        "netns",
        "cniArgs",
        "capabilityArgs",
        "result",
    ]
    assert doc["kind"] == "cniCacheV1" == CACHE_KIND
    assert base64.b64decode(doc["config"]) == CONFIG
    assert doc["cniArgs"] == [["IgnoreUnknown", "1"], ["K8S_POD_NAME", "web"]]
    assert doc["result"] == RESULT
    assert b"\n" not in raw and b": " not in raw


def test_empty_optional_fields_are_omitted(tmp_path: Path) -> None:
    cache = ResultCache(str(tmp_path))
    path = cache.write(entry(config=CONFIG))
    assert list(json.loads(Path(path).read_bytes())) == ["kind", "containerId", "config", "ifName", "networkName"]


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    cache = ResultCache(str(tmp_path))
    cache.write(entry(result={"cniVersion": "1.0.0"}))
    cache.write(entry(result=RESULT))
    assert os.listdir(tmp_path / "results") == ["net1-ctr1-eth0"]
    stored = cache.read("net1", "ctr1", "eth0")
    assert stored is not None and stored.result == RESULT


def test_reads_a_file_written_by_go_libcni(tmp_path: Path) -> None:
    # As Go marshals cachedInfo (field order, base64 []byte, omitempty).
    results = tmp_path / "results"
    results.mkdir()
    go = (
        '{"kind":"cniCacheV1","containerId":"abc","config":"' + base64.b64encode(CONFIG).decode() + '",'
        '"ifName":"eth0","networkName":"net1","netns":"/var/run/netns/x",'
        '"cniArgs":[["IgnoreUnknown","1"]],"result":{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.5/16"}]}}'
    )
    (results / "net1-abc-eth0").write_text(go)
    got = ResultCache(str(tmp_path)).read("net1", "abc", "eth0")
    assert got == CacheEntry(
        "net1", "abc", "eth0", CONFIG, "/var/run/netns/x", (("IgnoreUnknown", "1"),), {}, RESULT, legacy=False
    )


def test_legacy_bare_result(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "net1-ctr1-eth0").write_text(json.dumps(RESULT))
    got = ResultCache(str(tmp_path)).read("net1", "ctr1", "eth0")
    assert got is not None
    assert got.legacy is True
    assert got.result == RESULT
    assert (got.network_name, got.container_id, got.ifname) == ("net1", "ctr1", "eth0")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b'{"kind":"cniCacheV1","containerId":', "not valid JSON"),
        (b"[1,2]", "not a JSON object"),
        (b'{"kind":"cniCacheV2"}', "kind"),
        (b'{"kind":"cniCacheV1","containerId":7}', "containerId"),
        (b'{"kind":"cniCacheV1","config":"***"}', "config"),
        (b'{"kind":"cniCacheV1","cniArgs":[["a"]]}', "cniArgs[0]"),
        (b'{"kind":"cniCacheV1","result":[]}', "result"),
    ],
)
def test_unusable_files_raise_corrupt(tmp_path: Path, content: bytes, reason: str) -> None:
    (tmp_path / "results").mkdir()
    path = tmp_path / "results" / "net1-ctr1-eth0"
    path.write_bytes(content)
    with pytest.raises(CorruptCacheEntry) as err:
        ResultCache(str(tmp_path)).read("net1", "ctr1", "eth0")
    assert reason in err.value.reason
    assert err.value.path == str(path)
    assert err.value.code == 6


def test_delete(tmp_path: Path) -> None:
    cache = ResultCache(str(tmp_path))
    cache.write(entry())
    assert cache.delete("net1", "ctr1", "eth0") is True
    assert cache.delete("net1", "ctr1", "eth0") is False  # already gone: fine
    assert cache.read("net1", "ctr1", "eth0") is None


@pytest.mark.parametrize(
    ("net", "cid", "ifname"), [("", "c", "eth0"), ("n", "", "eth0"), ("n", "c", ""), ("n", "../x", "e")]
)
def test_path_parts_are_required_and_safe(tmp_path: Path, net: str, cid: str, ifname: str) -> None:
    cache = ResultCache(str(tmp_path))
    with pytest.raises(InvalidEnvironment):
        cache.path_for(net, cid, ifname)
    assert cache.delete(net, cid, ifname) is False


def test_default_dir() -> None:
    assert ResultCache("").cache_dir == "/var/lib/cni"
    assert ResultCache().results_dir == "/var/lib/cni/results"


# --------------------------------------------------------------------------
# attachments
# --------------------------------------------------------------------------


def test_attachments_sorted_and_filtered(tmp_path: Path) -> None:
    cache = ResultCache(str(tmp_path))
    cache.write(entry("net2", "ctr1", "eth0"))
    cache.write(entry("net1", "ctr1", "eth1"))
    cache.write(entry("net1", "ctr2", "eth0"))
    cache.write(entry("net1", "ctr10", "eth0"))
    results = tmp_path / "results"
    (results / "net1-ctr9-eth0").write_text(json.dumps(RESULT))  # legacy: skipped
    (results / "net1-ctr8-eth0").write_text("")  # empty: skipped
    (results / "net1-ctr7-eth0").write_text(
        '{"kind":"cniCacheV1","containerId":"ctr7","networkName":"net1"}'
    )  # no ifName
    (results / ".net1-ctr6-eth0.abc.tmp").write_text(json.dumps(entry("net1", "ctr6").to_wire()))  # crash leftover
    (results / "subdir").mkdir()

    keys = [(a.network_name, a.container_id, a.ifname) for a in cache.attachments()]
    assert keys == [
        ("net1", "ctr1", "eth1"),
        ("net1", "ctr10", "eth0"),
        ("net1", "ctr2", "eth0"),
        ("net2", "ctr1", "eth0"),
    ]

    only = [(a.network_name, a.ifname) for a in cache.attachments("ctr1")]
    assert only == [("net1", "eth1"), ("net2", "eth0")]


def test_attachments_filter_needs_matching_stored_id(tmp_path: Path) -> None:
    cache = ResultCache(str(tmp_path))
    cache.write(entry("net1", "ctr1", "eth0"))
    # File name says ctr1 but the content says otherwise: not ctr1's.
    (tmp_path / "results" / "net1-ctr1-eth1").write_text(json.dumps(entry("net1", "other", "eth1").to_wire()))
    assert [a.ifname for a in cache.attachments("ctr1")] == ["eth0"]


def test_attachments_filter_position_rules(tmp_path: Path) -> None:
    cache = ResultCache(str(tmp_path))
    results = tmp_path / "results"
    results.mkdir()
    # "-c-" at position 0 does not count, nor at the very end.
    (results / "-c-x").write_text(json.dumps(entry("n", "c", "x").to_wire()))
    (results / "n-c-").write_text(json.dumps(entry("n", "c", "y").to_wire()))
    (results / "n-c-z").write_text(json.dumps(entry("n", "c", "z").to_wire()))
    assert [a.ifname for a in cache.attachments("c")] == ["z"]
    assert len(cache.attachments()) == 3


def test_attachments_missing_dir_is_empty(tmp_path: Path) -> None:
    assert ResultCache(str(tmp_path / "nope")).attachments() == []
