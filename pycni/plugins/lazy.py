"""Handlers that import their plugin's module on first call.

A plugin package's ``__init__`` builds its ``PLUGIN`` from these, so a
VERSION call (or a bare run printing the about text) pays only for skel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pycni.skel import CmdArgs


def lazy(module: str, function: str) -> Callable[[CmdArgs], Any]:
    """``module.function``, imported when the handler is first called."""

    def handler(args: CmdArgs) -> Any:
        import importlib

        return getattr(importlib.import_module(module), function)(args)

    handler.__name__ = handler.__qualname__ = function
    return handler
