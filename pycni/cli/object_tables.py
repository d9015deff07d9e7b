"""How ``pycni get`` prints objects: kubectl's tables (NAME, AGE, ...) and its YAML/JSON dumps.

Contract: pure formatting of stored objects; ``table(kind, objects, ...)``
is kubectl's column layout for that kind, ``dump(doc, "yaml"|"json")`` its
serialisation, ``human_duration(seconds)`` its AGE column.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pycni.policy.store import Kind, StoredObject

__all__ = ["dump", "format_columns", "human_duration", "table"]


def dump(doc: dict[str, Any], output: str) -> str:
    if output == "json":
        return json.dumps(doc, indent=4, sort_keys=True) + "\n"
    import yaml

    class KubectlDumper(yaml.SafeDumper):
        """Quotes what must be quoted with double quotes, as kubectl does ("2", not '2')."""

        def choose_scalar_style(self) -> str:
            style = super().choose_scalar_style()
            return '"' if style == "'" else style

    return str(yaml.dump(doc, Dumper=KubectlDumper, sort_keys=True, default_flow_style=False, allow_unicode=True))


def table(kind: Kind, objects: Sequence[StoredObject], *, all_namespaces: bool, wide: bool, show_labels: bool,
           now: float) -> str:
    from pycni.policy.store import NAMESPACE, NETWORK_POLICY

    header = ["NAME"]
    if kind is NETWORK_POLICY:
        header.append("POD-SELECTOR")
    elif kind.name == "AdminNetworkPolicy":
        header.append("PRIORITY")
    elif kind is NAMESPACE:
        header.append("STATUS")
    header.append("AGE")
    if wide and kind.name == "Pod":
        header += ["IP", "NODE"]
    if all_namespaces:
        header.insert(0, "NAMESPACE")
    if show_labels:
        header.append("LABELS")
    rows = []
    for obj in objects:
        row = [obj.ref.name]
        if kind is NETWORK_POLICY:
            row.append(_pod_selector_text(obj))
        elif kind.name == "AdminNetworkPolicy":
            row.append(str((obj.manifest.get("spec") or {}).get("priority", "")))
        elif kind is NAMESPACE:
            row.append("Active")
        created = obj.created_at
        row.append(human_duration(now - created) if created is not None else "<unknown>")
        if wide and kind.name == "Pod":  # known once the pod is attached (validate reads them back)
            status = obj.manifest.get("status") or {}
            row += [str(status.get("podIP") or "<none>"), str((obj.manifest.get("spec") or {}).get("nodeName")
                                                              or "<none>")]
        if all_namespaces:
            row.insert(0, obj.ref.namespace)
        if show_labels:
            labels = obj.labels
            row.append(",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "<none>")
        rows.append(row)
    return format_columns(header, rows)


def _pod_selector_text(obj: StoredObject) -> str:
    """The policy's podSelector as kubectl prints it (``<none>`` selects every pod of the namespace)."""
    from pycni.policy.model import NetworkPolicy
    from pycni.policy.selectors import selector_text

    try:
        model = obj.model()
    except Exception:  # a value someone wrote into etcd by hand: show the rest anyway
        return "<error>"
    assert isinstance(model, NetworkPolicy)
    return selector_text(model.pod_selector) or "<none>"


def format_columns(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """kubectl's table: left-aligned columns 3 spaces apart, the last one not padded."""
    table = [list(header), *[list(row) for row in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join("   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in table)


def human_duration(seconds: float) -> str:
    """An age as kubectl prints it (``duration.HumanDuration``): 45s, 3m20s, 7m, 5h3m, 2d4h, 120d, 3y20d."""
    if seconds < -1:
        return "<invalid>"
    s = int(max(seconds, 0))
    minutes, hours, days = s // 60, s // 3600, s // 86400
    if s < 120:
        return f"{s}s"
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    years = days // 365
    if years < 8:
        return f"{years}y{days % 365}d" if days % 365 else f"{years}y"
    return f"{years}y"


# -- label ------------------------------------------------------------------------------------


