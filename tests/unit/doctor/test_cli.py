"""``pycni doctor``'s command line: --explain, --ignore, exit code 2 when doctor cannot run."""

from __future__ import annotations

import json

import pytest

from pycni.cli.main import main


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def test_explain_names_the_cause_and_the_fix(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["doctor", "--explain", 'failed to find plugin "bridge" in path [/opt/cni/bin]'], capsys)
    assert code == 0
    assert out.splitlines()[0] == "cause: plugin-missing"
    assert "fix:" in out


def test_explain_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["doctor", "--json", "--explain", "cni config uninitialized"], capsys)
    assert code == 0
    assert json.loads(out)["cause"]["id"] == "conf-missing"


def test_explain_without_a_known_cause_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["doctor", "--explain", "all good"], capsys)
    assert code == 2 and "no known cause" in err


def test_an_unknown_ignore_id_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["doctor", "--ignore", "no-such-check"], capsys)
    assert code == 2 and "unknown check id 'no-such-check'" in err


def test_the_agents_other_flags_are_accepted() -> None:
    from pycni.cli.main import build_parser

    args = build_parser().parse_args(["doctor", "--node-name", "n1", "--lease-ttl", "10", "--resync-interval", "2",
                                      "--metrics", "127.0.0.1:9100", "--policy", "on", "--no-masquerade"])
    assert args.node_name == "n1"
