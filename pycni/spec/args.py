"""CNI_ARGS: the deprecated ``K=V;K=V`` environment variable (spec section 2.6).

Contract: ``parse_cni_args`` turns the variable into ordered pairs and
raises InvalidEnvironment (code 4) for a malformed pair; ``format_cni_args``
is its inverse for the runtime side. ``CniArgs.take`` is the Go-compatible
strict reading (unknown keys are an error unless ``IgnoreUnknown=1|true``)
with an opt-out tolerant mode, because chained plugins cannot all declare
each other's keys (cni#560). Keys match case-sensitively, as in Go. Values
cannot contain ``=`` or ``;``: the format has no escaping.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from pycni.spec.errors import InvalidEnvironment
from pycni.spec.record import record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~4 ms, with re and enum, of a cold plugin call)
if TYPE_CHECKING:
    from typing import ClassVar

__all__ = ["K8S_KEYS", "CniArgs", "format_cni_args", "parse_cni_args"]

#: What Kubernetes CRI runtimes send, together with IgnoreUnknown=1 (a k8s convention, not spec).
K8S_KEYS: tuple[str, ...] = ("K8S_POD_NAMESPACE", "K8S_POD_NAME", "K8S_POD_INFRA_CONTAINER_ID", "K8S_POD_UID")

IGNORE_UNKNOWN = "IgnoreUnknown"


def _invalid_pair(part: str) -> InvalidEnvironment:
    return InvalidEnvironment(f'CNI_ARGS: invalid pair "{part}"')


def parse_cni_args(text: str) -> tuple[tuple[str, str], ...]:
    """Split ``K=V;K=V`` into ordered pairs; ``""`` gives ``()``.

    Like Go's LoadArgs, every part must split on ``=`` into exactly two
    pieces, so a trailing ``;`` or a value containing ``=`` is an error.
    Empty values are allowed; empty keys are not.
    """
    if not text:
        return ()
    pairs: list[tuple[str, str]] = []
    for part in text.split(";"):
        pieces = part.split("=")
        if len(pieces) != 2 or not pieces[0]:
            raise _invalid_pair(part)
        pairs.append((pieces[0], pieces[1]))
    return tuple(pairs)


def format_cni_args(pairs: Iterable[tuple[str, str]]) -> str:
    """Join pairs as ``K=V;K=V``; refuses what ``parse_cni_args`` could not read back."""
    parts: list[str] = []
    for key, value in pairs:
        part = f"{key}={value}"
        if not key or any(c in key or c in value for c in "=;"):
            raise _invalid_pair(part)
        parts.append(part)
    return ";".join(parts)


@record
class CniArgs:
    """Parsed CNI_ARGS. For a repeated key the last value wins, as in Go."""

    pairs: tuple[tuple[str, str], ...] = ()

    K8S_KEYS: ClassVar[tuple[str, ...]] = K8S_KEYS

    @classmethod
    def parse(cls, text: str) -> CniArgs:
        return cls(parse_cni_args(text))

    def __str__(self) -> str:
        return format_cni_args(self.pairs)

    def get(self, key: str, default: str | None = None) -> str | None:
        for k, v in reversed(self.pairs):
            if k == key:
                return v
        return default

    @property
    def ignore_unknown(self) -> bool:
        """``IgnoreUnknown``: ``1``/``true`` and ``0``/``false`` (any case); anything else is an error."""
        value = self.get(IGNORE_UNKNOWN)
        if value is None:
            return False
        if value.lower() in ("1", "true"):
            return True
        if value.lower() in ("0", "false"):
            return False
        raise InvalidEnvironment(f'CNI_ARGS: IgnoreUnknown must be 1, true, 0 or false, not "{value}"')

    @property
    def k8s_pod_name(self) -> str | None:
        return self.get("K8S_POD_NAME")

    @property
    def k8s_pod_namespace(self) -> str | None:
        return self.get("K8S_POD_NAMESPACE")

    @property
    def k8s_pod_infra_container_id(self) -> str | None:
        return self.get("K8S_POD_INFRA_CONTAINER_ID")

    @property
    def k8s_pod_uid(self) -> str | None:
        return self.get("K8S_POD_UID")

    def take(self, known: Collection[str], *, strict: bool = True) -> dict[str, str]:
        """The values of the ``known`` keys a plugin understands.

        ``strict`` is Go's LoadArgs: any other key (``IgnoreUnknown`` aside)
        is an error unless ``IgnoreUnknown`` is true, and a malformed
        ``IgnoreUnknown`` is always an error. ``strict=False`` ignores both.
        """
        taken = {k: v for k, v in self.pairs if k in known}
        if strict and not self.ignore_unknown:
            unknown = sorted({k for k, _ in self.pairs} - set(known) - {IGNORE_UNKNOWN})
            if unknown:
                raise InvalidEnvironment(f"ARGS: unknown args {unknown}")
        return taken
