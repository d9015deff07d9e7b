"""Field errors as Kubernetes prints them, and the one-line error for an invalid object.

Contract: ``FieldError`` renders exactly as apimachinery's ``field.Error``
(``<path>: Invalid value: <value>: <detail>``, ``<path>: Required value``,
``<path>: Unsupported value: "X": supported values: "A", "B"``,
``<path>: Duplicate value: "x"``, ``<path>: Forbidden: <detail>``), values
shown as Go shows them (strings quoted, numbers and booleans bare).
``ValidationError`` is what ``pycni.policy.validate`` raises: a
``ValueError`` whose ``str()`` is one line, ``<Kind> "<ns>/<name>" is
invalid: <error>`` or, with several, ``... is invalid: [<error>, <error>]``
as kubectl prints them, prefixed inside a batch with where the object was
written (``policy.yaml: document 2: ``) or else ``document N: ``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

__all__ = ["OMIT", "FieldError", "ValidationError"]

OMIT = object()  # "no value to show", as for Required and Forbidden


@dataclass(frozen=True)
class FieldError:
    """One field error, printed as apimachinery's field.Error prints it."""

    type: str  # "Invalid value", "Required value", "Unsupported value", "Duplicate value", "Forbidden"
    field: str
    value: object = OMIT
    detail: str = ""

    def __str__(self) -> str:
        body = self.type if self.value is OMIT else f"{self.type}: {_go_value(self.value)}"
        return f"{self.field}: {body}: {self.detail}" if self.detail else f"{self.field}: {body}"


def _go_value(value: object) -> str:
    """A bad value as Go's %v/%q would show it: strings quoted, numbers and booleans bare."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)


class ValidationError(ValueError):
    """An object the API server would refuse. ``str()`` is one line; ``errors`` has every field error."""

    def __init__(
        self,
        kind: str,
        name: str,
        errors: list[FieldError],
        index: int | None = None,
        where: str | None = None,
    ) -> None:
        self.kind = kind
        self.name = name  # "namespace/name" for namespaced kinds
        self.errors = errors
        self.index = index  # 1-based position in a validate_all batch
        self.where = where if where is not None else (f"document {index}" if index is not None else None)
        super().__init__(self._message())

    def _message(self) -> str:
        details = str(self.errors[0]) if len(self.errors) == 1 else "[" + ", ".join(map(str, self.errors)) + "]"
        where = f"{self.where}: " if self.where else ""
        return f'{where}{self.kind} "{self.name}" is invalid: {details}'

    def at(self, index: int, where: str | None = None) -> ValidationError:
        """The same error, placed in a batch: at ``index``, described as ``where`` when given."""
        return ValidationError(self.kind, self.name, self.errors, index, where)
