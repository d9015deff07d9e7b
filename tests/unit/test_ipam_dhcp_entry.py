"""``dhcp daemon ...`` from an installed plugin: both shims hand their own arguments to the plugin's command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pycni import shimfile
from pycni.executor import cshim
from tests.support.cnilab import REPO_ROOT

PRINT_ARGV = """#!{python} -S
import json, sys
print(json.dumps(sys.argv[1:]))
"""


def test_the_c_shim_hands_its_arguments_to_python_after_a_separator(tmp_path: Path) -> None:
    binary = cshim.build_shim_binary()
    if binary is None:
        pytest.skip("no C compiler here: the Python shim is what gets installed")
    fake = tmp_path / "fake-python"
    fake.write_text(PRINT_ARGV.format(python=sys.executable))
    fake.chmod(0o755)
    shim = tmp_path / "dhcp"
    shim.write_bytes(shimfile.patch_config(binary, "dhcp", str(fake), ["/r1"]))
    shim.chmod(0o755)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    out = subprocess.run(
        [str(shim), "daemon", "-socketpath", "/x y.sock"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    argv = json.loads(out.stdout)  # what the fake python was given
    assert argv[:3] == ["-I", "-S", "-c"] and argv[4:] == [
        "dhcp",
        "run",
        "/r1",
        "--",
        "daemon",
        "-socketpath",
        "/x y.sock",
    ]
    # And the fallback code gives the plugin exactly those arguments.
    code = argv[3].replace("from pycni.executor.shim import fallback;fallback(t,m=='died')", "print(t,m,sys.argv)")
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, *argv[4:]], capture_output=True, text=True, check=True, timeout=30
    )
    assert out.stdout.strip() == "dhcp run ['-c', 'daemon', '-socketpath', '/x y.sock']"


@pytest.mark.parametrize("shim", ["c", "python"])
def test_an_installed_dhcp_plugin_runs_its_command_line(tmp_path: Path, shim: str) -> None:
    from pycni.executor.install import install_plugins

    if shim == "c" and cshim.build_shim_binary() is None:
        pytest.skip("no C compiler here")
    install_plugins(tmp_path, ["dhcp"], shim=shim)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run(
        [str(tmp_path / "dhcp"), "serve"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 2 and "did you mean 'dhcp daemon'" in out.stderr
    out = subprocess.run(
        [str(tmp_path / "dhcp"), "daemon", "-timeout", "soon"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2 and "invalid duration 'soon'" in out.stderr
