"""Doctor's output: the JSON contract, the lines for people, exit codes and --ignore."""

from __future__ import annotations

import json

from pycni.doctor.report import render_json, render_text
from pycni.doctor.result import fail, passed, skip, warn
from pycni.doctor.run import exit_code, ignored

RESULTS = [
    passed("datastore", "etcd answers"),
    fail("agent-down", "the agent (pid 42) is not running", ["pid 42, node n1"], "start the agent"),
    warn("rp-filter", "strict", ["pycni.1: 1"], "sysctl -w net.ipv4.conf.all.rp_filter=2"),
    skip("synthetic-pod", "not run: see agent-down"),
]


def test_json_has_exactly_the_contracts_fields() -> None:
    doc = json.loads(render_json("n1", RESULTS, 0.5))
    assert doc["node"] == "n1"
    assert [set(c) for c in doc["checks"]] == [{"id", "status", "summary", "evidence", "fix"}] * 4
    assert doc["checks"][1] == {"id": "agent-down", "status": "fail", "summary": "the agent (pid 42) is not running",
                                "evidence": ["pid 42, node n1"], "fix": "start the agent"}
    assert doc["summary"] == {"pass": 1, "warn": 1, "fail": 1, "skip": 1}


def test_text_shows_glyphs_and_why_fix_under_problems_only() -> None:
    text = render_text("n1", RESULTS, 0.5)
    lines = text.splitlines()
    assert lines[1].startswith("✔ datastore")
    assert lines[2].startswith("✖ agent-down")
    assert lines[3:5] == ["    why: pid 42, node n1", "    fix: start the agent"]
    assert lines[5].startswith("! rp-filter")
    assert lines[-2].startswith("- synthetic-pod")
    assert lines[-1] == "1 failed, 1 warning(s), 1 passed, 1 skipped in 0.50s"


def test_exit_codes_and_ignore() -> None:
    assert exit_code(RESULTS) == 1
    assert exit_code([r for r in RESULTS if r.status != "fail"]) == 0
    shown = ignored(RESULTS, {"agent-down"})
    assert shown[1].status == "warn" and shown[1].summary.endswith("(ignored)")
    assert exit_code(shown, {"agent-down"}) == 0
