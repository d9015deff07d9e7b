"""pycni.policy.manifest: YAML/JSON text in, Kubernetes-shaped dicts out, one-line errors."""

from __future__ import annotations

import pytest

from pycni.policy.manifest import ManifestError, load_located, load_manifests

NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}


def test_single_yaml_document() -> None:
    assert load_manifests("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n") == [NAMESPACE]


def test_multi_document_yaml_skips_empty_documents() -> None:
    text = "---\n# only a comment\n---\nkind: Pod\n---\n---\nkind: Namespace\n...\n"
    assert load_manifests(text) == [{"kind": "Pod"}, {"kind": "Namespace"}]


def test_empty_text_is_no_objects() -> None:
    assert load_manifests("") == []
    assert load_manifests("   \n# nothing\n") == []


def test_json_object_and_concatenated_objects() -> None:
    assert load_manifests('{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}') == [NAMESPACE]
    assert load_manifests('{"kind": "Pod"}\n{"kind": "Namespace"}') == [{"kind": "Pod"}, {"kind": "Namespace"}]


def test_list_kind_is_flattened_in_order() -> None:
    text = """
kind: List
apiVersion: v1
items:
- {kind: Namespace, metadata: {name: a}}
- {kind: Pod, metadata: {name: p}}
---
kind: Pod
metadata: {name: q}
"""
    assert [obj["metadata"]["name"] for obj in load_manifests(text)] == ["a", "p", "q"]


def test_typed_list_kinds_are_flattened() -> None:
    text = '{"kind": "NetworkPolicyList", "apiVersion": "networking.k8s.io/v1", "items": [{"kind": "NetworkPolicy"}]}'
    assert load_manifests(text) == [{"kind": "NetworkPolicy"}]


def test_empty_list_is_no_objects() -> None:
    assert load_manifests("kind: List\nitems: []\n") == []
    assert load_manifests("kind: List\nitems:\n") == []


def test_a_kind_ending_in_list_without_items_is_an_object() -> None:
    # Only a List carrying items is flattened; anything else goes on to validation as it is.
    assert load_manifests("kind: PodList\n") == [{"kind": "PodList"}]


def test_timestamps_stay_strings() -> None:
    (obj,) = load_manifests("kind: Pod\nmetadata: {labels: {built: 2024-01-01, at: 2024-01-01T10:00:00Z}}\n")
    assert obj["metadata"]["labels"] == {"built": "2024-01-01", "at": "2024-01-01T10:00:00Z"}


def test_safe_loader_refuses_python_tags() -> None:
    with pytest.raises(ManifestError, match=r"^p\.yaml: document 1: invalid YAML: "):
        load_manifests("kind: !!python/object/apply:os.system ['true']\n", "p.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: Pod\n---\n- a\n- b\n", "policy.yaml: document 2: not a mapping"),
        ("kind: Pod\n---\njust a string\n", "policy.yaml: document 2: not a mapping"),
        ("kind: Pod\n---\nkind: [\n", "policy.yaml: document 2: invalid YAML: "),
        ("kind: Pod\nkind: Namespace\n", "policy.yaml: document 1: invalid YAML: mapping key 'kind' already defined"),
        ('{"kind": }', "policy.yaml: document 1: invalid JSON: Expecting value at line 1 column 10"),
        ('{"kind": "Pod"} {"kind"', "policy.yaml: document 2: invalid JSON: "),
        ("kind: List\nitems: 3\n", "policy.yaml: document 1: List: items: must be a list"),
        ("kind: Pod\n---\nkind: List\nitems: [a]\n", "policy.yaml: document 2: items[0]: not a mapping"),
        (
            "kind: List\nitems: [{kind: List, items: []}]\n",
            "policy.yaml: document 1: items[0]: a List may not be nested in a List",
        ),
    ],
)
def test_errors_name_source_and_document(text: str, message: str) -> None:
    with pytest.raises(ManifestError) as exc:
        load_manifests(text, "policy.yaml")
    assert str(exc.value).startswith(message)
    if message.endswith("not a mapping"):
        assert str(exc.value) == message
    assert "\n" not in str(exc.value)
    assert isinstance(exc.value, ValueError)


def test_yaml_error_names_line_and_column() -> None:
    with pytest.raises(ManifestError, match=r"found character '\\t' that cannot start any token at line 3 column 1$"):
        load_manifests("kind: Pod\nmetadata:\n\tname: a\n", "x.yaml")


def test_load_located_names_where_each_object_was_written() -> None:
    text = "kind: Pod\n---\n---\nkind: List\nitems: [{kind: Pod}, {kind: Namespace}]\n"
    assert [where for where, _ in load_located(text, "a.yaml")] == [
        "a.yaml: document 1",
        "a.yaml: document 3: items[0]",
        "a.yaml: document 3: items[1]",
    ]
    assert [obj for _, obj in load_located(text, "a.yaml")] == load_manifests(text, "a.yaml")
