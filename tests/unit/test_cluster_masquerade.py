"""The agent's masquerade transaction (cluster/masquerade.py): the pure rendering."""

from __future__ import annotations

from ipaddress import IPv4Network

from pycni.cluster.masquerade import masquerade_commands


def test_masquerade_transaction_recreates_the_table_with_three_rules() -> None:
    commands = masquerade_commands(IPv4Network("10.244.0.0/16"))
    verbs = [next(iter(c)) for c in commands]
    assert verbs[:3] == ["add", "delete", "add"]
    assert all("table" in c[v] for c, v in zip(commands[:3], verbs[:3], strict=True))
    rules = [c["add"]["rule"] for c in commands if "rule" in c.get("add", {})]
    assert len(rules) == 3
    assert rules[0]["expr"][1]["match"]["right"] == {"prefix": {"addr": "10.244.0.0", "len": 16}}
    assert rules[0]["expr"][1]["match"]["op"] == "=="
    assert rules[2]["expr"][-1] == {"masquerade": None}
    chain = next(c["add"]["chain"] for c in commands if "chain" in c.get("add", {}))
    assert chain["hook"] == "postrouting" and chain["type"] == "nat"
