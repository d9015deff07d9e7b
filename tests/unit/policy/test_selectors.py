"""Label selectors as Kubernetes matches them, and their kubectl text."""

from __future__ import annotations

import pytest

from pycni.policy.model import LabelSelector, Requirement, labels_of
from pycni.policy.selectors import labels_text, selector_matches, selector_text


def sel(match: dict[str, str] | None = None, *reqs: Requirement) -> LabelSelector:
    return LabelSelector(labels_of(match), tuple(reqs))


@pytest.mark.parametrize("labels", [{}, {"pod": "a"}, {"pod": "a", "tier": "db"}])
def test_the_empty_selector_matches_everything(labels: dict[str, str]) -> None:
    assert selector_matches(LabelSelector(), labels_of(labels))


def test_match_labels_need_every_pair() -> None:
    assert selector_matches(sel({"pod": "a", "tier": "db"}), labels_of({"pod": "a", "tier": "db", "x": "1"}))
    assert not selector_matches(sel({"pod": "a", "tier": "db"}), labels_of({"pod": "a"}))
    assert not selector_matches(sel({"pod": "a"}), labels_of({"pod": "b"}))


@pytest.mark.parametrize(
    ("req", "labels", "expected"),
    [
        (Requirement("pod", "In", ("a", "b")), {"pod": "b"}, True),
        (Requirement("pod", "In", ("a", "b")), {"pod": "c"}, False),
        (Requirement("pod", "In", ("a",)), {}, False),
        (Requirement("pod", "NotIn", ("a",)), {"pod": "b"}, True),
        (Requirement("pod", "NotIn", ("a",)), {"pod": "a"}, False),
        (Requirement("pod", "NotIn", ("a",)), {}, True),  # an absent key is "not in", as Kubernetes has it
        (Requirement("pod", "Exists"), {"pod": ""}, True),
        (Requirement("pod", "Exists"), {}, False),
        (Requirement("pod", "DoesNotExist"), {}, True),
        (Requirement("pod", "DoesNotExist"), {"pod": "a"}, False),
    ],
)
def test_each_operator(req: Requirement, labels: dict[str, str], expected: bool) -> None:
    assert selector_matches(sel(None, req), labels_of(labels)) is expected


def test_labels_and_expressions_are_anded() -> None:
    both = sel({"pod": "a"}, Requirement("tier", "In", ("db",)), Requirement("canary", "DoesNotExist"))
    assert selector_matches(both, labels_of({"pod": "a", "tier": "db"}))
    assert not selector_matches(both, labels_of({"pod": "b", "tier": "db"}))
    assert not selector_matches(both, labels_of({"pod": "a", "tier": "web"}))
    assert not selector_matches(both, labels_of({"pod": "a", "tier": "db", "canary": "yes"}))


def test_selector_text_is_kubectls_form() -> None:
    selector = sel(
        {"pod": "a", "app": "web"},
        Requirement("tier", "In", ("db", "web")),
        Requirement("env", "NotIn", ("dev",)),
        Requirement("team", "Exists"),
        Requirement("canary", "DoesNotExist"),
    )
    assert selector_text(selector) == "app=web,pod=a,tier in (db,web),env notin (dev),team,!canary"
    assert selector_text(LabelSelector()) == ""


def test_labels_text() -> None:
    assert labels_text(labels_of({"pod": "b", "app": "x"})) == "app=x,pod=b"
    assert labels_text(()) == ""
