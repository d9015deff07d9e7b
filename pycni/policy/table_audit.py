"""Does the kernel's policy table hold what the agent committed? Counted object by object.

Contract: pure. ``ruleset_summary(ruleset)`` is what the agent answers to
the ``ruleset`` request on its socket: for each chain the number of rules,
for each set and verdict map the number of elements (interval sets apart:
the kernel may store their prefixes as ranges, so only their presence is
compared). ``kernel_summary(items)`` reads the same from the "nftables"
array of ``nft -j list table inet pycni_policy``. ``differences(expected,
actual)`` lists, one line each, what is missing, extra or of another size:
a table someone flushed, edited by hand, or that a failed transaction left
behind. (Rule *text* is not compared: nft prints rules in its own
canonical form, not the text the compiler wrote.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pycni.policy.ruleset import Ruleset

__all__ = ["differences", "kernel_summary", "ruleset_summary"]

Summary = dict[str, dict[str, int]]


def ruleset_summary(ruleset: Ruleset) -> Summary:
    return {
        "chains": {name: len(chain.rules) for name, chain in ruleset.chains.items()},
        "sets": {name: len(s.elements) for name, s in ruleset.sets.items() if not s.interval},
        "interval_sets": {name: 0 for name, s in ruleset.sets.items() if s.interval},
        "maps": {name: len(m.elements) for name, m in ruleset.maps.items()},
    }


def kernel_summary(items: Iterable[Mapping[str, Any]]) -> Summary:
    out: Summary = {"chains": {}, "sets": {}, "interval_sets": {}, "maps": {}}
    for item in items:
        if "chain" in item:
            out["chains"].setdefault(item["chain"]["name"], 0)
        elif "rule" in item:
            chain = item["rule"]["chain"]
            out["chains"][chain] = out["chains"].get(chain, 0) + 1
        elif "set" in item:
            body = item["set"]
            if "interval" in (body.get("flags") or ()):
                out["interval_sets"][body["name"]] = 0
            else:
                out["sets"][body["name"]] = len(body.get("elem") or ())
        elif "map" in item:
            out["maps"][item["map"]["name"]] = len(item["map"].get("elem") or ())
    return out


_WHAT = {"chains": ("chain", "rules"), "sets": ("set", "elements"), "interval_sets": ("set", ""),
         "maps": ("map", "elements")}


def differences(expected: Mapping[str, Mapping[str, int]], actual: Mapping[str, Mapping[str, int]]) -> list[str]:
    found: list[str] = []
    for kind, (noun, unit) in _WHAT.items():
        want, have = expected.get(kind, {}), actual.get(kind, {})
        found += [f"{noun} {name} is missing" for name in sorted(want.keys() - have.keys())]
        found += [f"{noun} {name} is not the agent's" for name in sorted(have.keys() - want.keys())]
        if unit:
            found += [f"{noun} {name} holds {have[name]} {unit}, the agent committed {want[name]}"
                      for name in sorted(want.keys() & have.keys()) if want[name] != have[name]]
    return found
