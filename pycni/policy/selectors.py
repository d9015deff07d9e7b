"""Kubernetes label selectors: matching and the one-line text ``kubectl`` prints.

Contract: pure functions over ``pycni.policy.model`` values.

- ``selector_matches(sel, labels)``: every ``matchLabels`` pair AND every
  ``matchExpressions`` requirement holds; an empty selector matches
  everything. ``NotIn`` and ``DoesNotExist`` hold when the key is absent, as
  in Kubernetes (``k8s.io/apimachinery/pkg/labels``).
- ``selector_text(sel)``: the selector in kubectl's string form
  (``pod=a,tier in (db,web),!canary``); ``""`` for the empty selector.
- ``labels_text(labels)``: ``k=v,k2=v2`` in key order; ``""`` for none.
"""

from __future__ import annotations

from pycni.policy.model import Labels, LabelSelector, Requirement

__all__ = ["labels_text", "requirement_holds", "selector_matches", "selector_text"]


def requirement_holds(req: Requirement, labels: dict[str, str]) -> bool:
    """One matchExpressions entry against a pod's or namespace's labels."""
    present = req.key in labels
    if req.operator == "Exists":
        return present
    if req.operator == "DoesNotExist":
        return not present
    if req.operator == "In":
        return present and labels[req.key] in req.values
    # NotIn: an absent key is "not in" any set of values
    return not present or labels[req.key] not in req.values


def selector_matches(sel: LabelSelector, labels: Labels) -> bool:
    """True when ``labels`` satisfy every part of ``sel`` (the empty selector matches all)."""
    as_dict = dict(labels)
    if any(as_dict.get(key) != value for key, value in sel.match_labels):
        return False
    return all(requirement_holds(req, as_dict) for req in sel.match_expressions)


def _requirement_text(req: Requirement) -> str:
    if req.operator == "Exists":
        return req.key
    if req.operator == "DoesNotExist":
        return f"!{req.key}"
    word = "in" if req.operator == "In" else "notin"
    return f"{req.key} {word} ({','.join(req.values)})"


def selector_text(sel: LabelSelector) -> str:
    """kubectl's form of a selector; ``""`` when it selects everything."""
    parts = [f"{key}={value}" for key, value in sel.match_labels]
    parts += [_requirement_text(req) for req in sel.match_expressions]
    return ",".join(parts)


def labels_text(labels: Labels) -> str:
    return ",".join(f"{key}={value}" for key, value in labels)
