"""nftables through libnftables (the ``nftables`` module of pip-nftables).

One process-wide context per thread's network namespace would be ideal;
libnftables opens its netlink socket per command, in the calling thread's
namespace, so a plain context is safe to use from run_in_netns threads.

Contract:
- ``apply(script)`` runs an nft script (``add table ...`` lines) as one
  atomic transaction; failure raises NftError with nft's own message.
  ``apply_json(commands)`` does the same for libnftables JSON commands.
- ``list_json(what)`` returns the "nftables" array of ``nft -j list <what>``,
  or [] when the object does not exist (so teardown can be idempotent).
- ``rules(family, table, chain=None)`` returns nft's JSON rule objects,
  comments and handles included: callers find an attachment's rules by the
  owner tag in their comment, which is how DEL and GC remove exactly what it
  added, even after a crash. ``table_exists`` asks without listing rules.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from pycni.net.errors import NetError

_local = threading.local()


class NftError(NetError):
    """nft refused a command; the message is nft's."""


def _context() -> Any:
    ctx = getattr(_local, "ctx", None)
    if ctx is None:
        try:
            import nftables  # type: ignore[import-untyped]  # pip-nftables: ctypes binding of libnftables1
        except ImportError as exc:
            raise NftError(f"nftables support needs the 'pip-nftables' package and libnftables1: {exc}") from exc
        ctx = nftables.Nftables()
        ctx.set_json_output(False)
        ctx.set_handle_output(True)
        _local.ctx = ctx
    return ctx


def _run(command: str) -> str:
    rc, output, error = _context().cmd(command)
    if rc != 0:
        raise NftError(f"nft: {error.strip() or 'command failed'}", command.strip()[:2000])
    return str(output)


def apply(script: str) -> None:
    """Run a multi-line nft script atomically (all of it or none of it)."""
    _run(script)


def apply_json(commands: list[dict[str, Any]]) -> None:
    """Run libnftables JSON commands (``[{"add": {"rule": {...}}}, ...]``) as one atomic transaction.

    JSON needs no quoting: names and comments are passed as they are (the
    script syntax rejects quoted chain names and characters some
    interface names may contain).
    """
    if not commands:
        return
    rc, _output, error = _context().json_cmd({"nftables": commands})
    if rc != 0:
        raise NftError(f"nft: {str(error).strip() or 'command failed'}", json.dumps(commands)[:2000])


def list_json(what: str) -> list[dict[str, Any]]:
    """``nft -j list <what>``; [] when the table/chain does not exist."""
    ctx = _context()
    ctx.set_json_output(True)
    try:
        rc, output, error = ctx.cmd(f"list {what}")
    finally:
        ctx.set_json_output(False)
    if rc != 0:
        if "No such file or directory" in error or "does not exist" in error:
            return []
        raise NftError(f"nft: {error.strip()}", f"list {what}")
    items: list[dict[str, Any]] = json.loads(output).get("nftables", [])
    return items


def table_exists(family: str, table: str) -> bool:
    return bool(list_json(f"table {family} {table}"))


def rules(family: str, table: str, chain: str | None = None) -> list[dict[str, Any]]:
    """Every rule of a table (or one chain of it), as nft's JSON rule objects."""
    what = f"chain {family} {table} {chain}" if chain else f"table {family} {table}"
    return [item["rule"] for item in list_json(what) if "rule" in item]


__all__ = [
    "NftError",
    "apply",
    "apply_json",
    "list_json",
    "rules",
    "table_exists",
]
