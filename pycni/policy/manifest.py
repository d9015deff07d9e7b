"""Kubernetes manifests as text in, plain objects (dicts) out: what ``pycni apply -f`` reads.

Contract: pure, no I/O beyond parsing the text it is given.
``load_manifests(text, source)`` accepts what kubectl accepts:

- YAML, one or more documents separated by ``---`` (a document that is
  empty or only comments is skipped, but still counted, so "document 3"
  is the third document the user wrote);
- JSON: one object (a JSON document is also YAML, but JSON errors read
  better when parsed as JSON);
- a ``kind: List`` (or any ``*List`` kind carrying ``items``, e.g.
  ``NetworkPolicyList``) is flattened to its items, in order.

What comes out is only shaped (every object a mapping); whether it is a
valid Kubernetes object is ``pycni.policy.validate``'s job. YAML is read
with PyYAML's safe loader, with two kubectl habits: a timestamp-looking
scalar stays a string (``version: 2024-01-01`` is the string it looks
like), and a key repeated in one mapping is an error rather than "last
wins". Every problem raises ``ManifestError``, one line naming the source
and the document: ``policy.yaml: document 2: not a mapping``.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

__all__ = ["ManifestError", "load_located", "load_manifests"]


class ManifestError(ValueError):
    """The text is not a set of Kubernetes-shaped objects. One line, naming source and document."""


class _Loader(yaml.SafeLoader):
    """The safe loader, minus timestamp resolution, refusing duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: the base class reports it
                break
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"mapping key {key!r} already defined", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# Timestamps stay strings, as they do once kubectl has turned YAML into JSON.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_manifests(text: str, source: str = "-") -> list[dict[str, Any]]:
    """Every object in ``text``, Lists flattened, empty documents skipped. Raises ManifestError."""
    return [obj for _, obj in load_located(text, source)]


def load_located(text: str, source: str = "-") -> list[tuple[str, dict[str, Any]]]:
    """``load_manifests`` with where each object was written (``policy.yaml: document 2``, or
    ``policy.yaml: document 1: items[3]`` inside a List), for ``validate_all(..., where=...)``."""
    documents = _json_documents(text, source) if text.lstrip().startswith("{") else _yaml_documents(text, source)
    objects: list[tuple[str, dict[str, Any]]] = []
    for index, document in enumerate(documents, start=1):
        if document is None:
            continue
        where = f"{source}: document {index}"
        if not isinstance(document, dict):
            raise ManifestError(f"{where}: not a mapping")
        if _is_list(document):
            objects += [(f"{where}: items[{i}]", item) for i, item in enumerate(_list_items(document, where))]
        else:
            objects.append((where, document))
    return objects


def _json_documents(text: str, source: str) -> list[Any]:
    """One JSON object, or several one after another (as `kubectl get -o json` output concatenated)."""
    decoder = json.JSONDecoder()
    documents: list[Any] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            return documents
        try:
            document, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            raise ManifestError(
                f"{source}: document {len(documents) + 1}: invalid JSON: {exc.msg} "
                f"at line {exc.lineno} column {exc.colno}"
            ) from exc
        documents.append(document)


def _yaml_documents(text: str, source: str) -> list[Any]:
    documents: list[Any] = []
    try:
        for document in yaml.load_all(text, Loader=_Loader):
            documents.append(document)
    except yaml.YAMLError as exc:
        raise ManifestError(f"{source}: document {len(documents) + 1}: invalid YAML: {_yaml_problem(exc)}") from exc
    return documents


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        problem = exc.problem or exc.context or "syntax error"
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            return f"{problem} at line {mark.line + 1} column {mark.column + 1}"
        return problem
    return " ".join(str(exc).split())


def _is_list(document: dict[str, Any]) -> bool:
    kind = document.get("kind")
    return isinstance(kind, str) and kind.endswith("List") and "items" in document


def _list_items(document: dict[str, Any], where: str) -> list[dict[str, Any]]:
    items = document["items"]
    if items is None:
        return []
    if not isinstance(items, list):
        raise ManifestError(f"{where}: {document['kind']}: items: must be a list")
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            raise ManifestError(f"{where}: items[{position}]: not a mapping")
        if _is_list(item):
            raise ManifestError(f"{where}: items[{position}]: a {item['kind']} may not be nested in a List")
    return items
