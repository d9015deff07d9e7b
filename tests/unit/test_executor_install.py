"""Shim files and the executor's install: the template, reading a shim back, systemd units, metrics."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from pycni.cli.install import cmd_install
from pycni.executor.install import render_shim
from pycni.executor.metrics import Metrics, parse_addr, serve_metrics
from pycni.executor.systemd import UNITS, render_unit
from pycni.shimfile import SHIM_MARKER, shim_plugin_type

REPO_ROOT = Path(__file__).resolve().parents[2]


def install(bin_dir: Path, *plugin_types: str, **extra: object) -> int:
    return cmd_install(argparse.Namespace(bin_dir=str(bin_dir), plugins=list(plugin_types), force=False, **extra), {})


def test_shim_runs_the_executor_shim_in_isolated_mode() -> None:
    text = render_shim("bridge", python="/usr/bin/python3")
    assert text.splitlines()[0] == "#!/usr/bin/python3 -IS"
    assert SHIM_MARKER in text
    assert text.rstrip().splitlines()[-2:] == ["from pycni.executor.shim import main", "main('bridge')"]


def test_shim_can_carry_its_executor_socket(tmp_path: Path) -> None:
    install(tmp_path, "bridge", executor_socket="/tmp/private executor.sock", shim="python")
    text = (tmp_path / "bridge").read_text()
    assert text.rstrip().splitlines()[-1] == "main('bridge', b'/tmp/private executor.sock')"
    assert shim_plugin_type(str(tmp_path / "bridge")) == "bridge"


def test_shim_plugin_type_reads_our_shims_back(tmp_path: Path) -> None:
    install(tmp_path, "host-local", "static")
    assert shim_plugin_type(str(tmp_path / "host-local")) == "host-local"
    # A copy under another name still runs the type written inside it.
    (tmp_path / "my-ipam").write_bytes((tmp_path / "static").read_bytes())
    assert shim_plugin_type(str(tmp_path / "my-ipam")) == "static"


def test_shim_plugin_type_rejects_foreign_files_and_other_installations(tmp_path: Path) -> None:
    go = tmp_path / "go"
    go.write_bytes(b"\x7fELF...")
    other = tmp_path / "other"
    other.write_text(render_shim("bridge").replace(repr(str(REPO_ROOT)), repr("/elsewhere/pycni")))
    old = tmp_path / "old"  # shims written before the executor called pycni.plugins.run()
    old.write_text(render_shim("ptp").replace("from pycni.executor.shim import main\nmain(",
                                              "from pycni.plugins import run\nrun("))
    assert shim_plugin_type(str(go)) is None
    assert shim_plugin_type(str(tmp_path / "missing")) is None
    assert shim_plugin_type(str(other)) is None
    assert shim_plugin_type(str(old)) == "ptp"


def test_shipped_units_match_what_install_renders() -> None:
    for name in UNITS:
        shipped = (REPO_ROOT / "packaging" / "systemd" / name).read_text()
        assert shipped == render_unit(name, ["/usr/bin/pycni"]), f"regenerate packaging/systemd/{name}"


def test_units_are_socket_activated_and_root_only() -> None:
    socket_unit = render_unit("pycni-executor.socket", ["pycni"])
    assert "ListenStream=/run/pycni/executor.sock" in socket_unit
    assert "SocketMode=0600" in socket_unit
    service = render_unit("pycni-executor.service", ["/opt/my venv/bin/python", "-m", "pycni"])
    assert 'ExecStart="/opt/my venv/bin/python" -m pycni executor' in service
    assert "Requires=pycni-executor.socket" in service
    with pytest.raises(KeyError):
        render_unit("nope.service", ["pycni"])


def test_install_executor_writes_units_without_touching_systemd(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    units = tmp_path / "units"
    assert install(tmp_path / "bin", "bridge", executor=True, systemd_dir=str(units)) == 0
    assert sorted(p.name for p in units.iterdir()) == sorted(UNITS)
    service = (units / "pycni-executor.service").read_text()
    assert f"ExecStart={sys.executable} -m pycni executor" in service
    out = capsys.readouterr().out
    if os.path.isdir("/run/systemd/system"):
        assert "systemctl enable --now pycni-executor.socket" in out
    else:
        assert "pycni executor --daemon" in out


def test_cli_exposes_executor_and_install_executor() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    for args in (["executor", "--help"], ["install", "--help"]):
        out = subprocess.run([sys.executable, "-m", "pycni", *args], capture_output=True, text=True, env=env,
                             timeout=60)
        assert out.returncode == 0, out.stderr
    assert "--metrics" in subprocess.run([sys.executable, "-m", "pycni", "executor", "--help"], capture_output=True,
                                         text=True, env=env, timeout=60).stdout


# -- metrics ---------------------------------------------------------------


def test_metrics_text_format() -> None:
    m = Metrics()
    m.observe("bridge", "ADD", 0.004, None)
    m.observe("bridge", "ADD", 0.2, 7)
    m.refused("not_root")
    m.timed_out("bridge", "DEL")
    text = m.render()
    assert 'pycni_executor_requests_total{plugin="bridge",command="ADD"} 2' in text
    assert 'pycni_executor_request_duration_seconds_bucket{plugin="bridge",command="ADD",le="0.005"} 1' in text
    assert 'pycni_executor_request_duration_seconds_bucket{plugin="bridge",command="ADD",le="+Inf"} 2' in text
    assert 'pycni_executor_request_duration_seconds_count{plugin="bridge",command="ADD"} 2' in text
    assert 'pycni_executor_errors_total{plugin="bridge",command="ADD",code="7"} 1' in text
    assert 'pycni_executor_refused_total{reason="not_root"} 1' in text
    assert 'pycni_executor_timeouts_total{plugin="bridge",command="DEL"} 1' in text
    assert "# TYPE pycni_executor_request_duration_seconds histogram" in text
    assert text.endswith("\n")


def test_metrics_label_values_are_escaped() -> None:
    m = Metrics()
    m.refused('a"b\\c\nd')
    assert 'reason="a\\"b\\\\c\\nd"' in m.render()


@pytest.mark.parametrize(
    ("addr", "expected"),
    [("127.0.0.1:9300", ("127.0.0.1", 9300)), (":9300", ("", 9300)), ("[::1]:0", ("::1", 0))],
)
def test_parse_addr(addr: str, expected: tuple[str, int]) -> None:
    assert parse_addr(addr) == expected


@pytest.mark.parametrize("addr", ["9300", "host:", "host:http", "h:70000"])
def test_parse_addr_rejects(addr: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_addr(addr)


def test_metrics_are_served_over_http() -> None:
    m = Metrics()
    m.observe("tuning", "DEL", 0.01, None)
    server = serve_metrics("127.0.0.1:0", m)
    try:
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
            assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            assert 'pycni_executor_requests_total{plugin="tuning",command="DEL"} 1' in reply.read().decode()
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=10)
        assert err.value.code == 404
        err.value.close()
    finally:
        server.shutdown()
        server.server_close()


def test_json_log_lines(tmp_path: Path) -> None:
    from pycni.executor.logs import JsonLog

    path = tmp_path / "sub" / "executor.log"
    log = JsonLog(str(path))
    log("call", plugin="bridge", duration_ms=1.5)
    path.rename(tmp_path / "rotated.log")
    log.reopen()
    log("refused", "warning", reason="not_root")
    log.close()
    first = json.loads((tmp_path / "rotated.log").read_text())
    second = json.loads(path.read_text())
    assert first["event"] == "call" and first["plugin"] == "bridge" and first["level"] == "info"
    assert first["time"].endswith("Z")
    assert second == {**second, "event": "refused", "level": "warning", "reason": "not_root"}
