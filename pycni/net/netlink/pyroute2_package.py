"""pyroute2's package, registered without running its ``__init__``, and its submodules on first use.

Contract:

- ``pyroute2()`` is the whole pyroute2 package (``IPRoute``, ``Conntrack``);
  ``pyroute2_module(name)`` one of its submodules. Both import on first use.

Why the package is registered by hand (``_defer_package_init``): pyroute2's
``__init__`` imports every API it has (NDB, IPDB, conntrack, wireguard,
...): ~400 ms, where the three message classes need ~70 ms. A submodule
cannot be imported without its parent package, and the parent cannot be
imported without running its ``__init__``; ``importlib.util.LazyLoader``
does not help, because finding a submodule reads the parent's ``__path__``,
which runs the lazy ``__init__`` at once. So when nothing has imported
pyroute2 yet, the package goes into ``sys.modules`` built from its own spec
but not executed, as a ``_DeferredPackage``; its submodules then load
normally (``from pyroute2 import config`` in them imports the submodule,
as for any package). The first attribute asked of the package that it does
not have and that is not a submodule (``pyroute2.IPRoute``, ``from pyroute2
import NDB``: whoever asks, here or in any other code) runs its ``__init__``
into that same module object, once, under a lock, and the module becomes a
plain module again. Before that, ``dir(pyroute2)``, ``pyroute2.__dict__``
and attribute access to a submodule nobody imported yet (``pyroute2.ndb``)
see the package unfinished.
"""

from __future__ import annotations

import sys
import threading
import types

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~4 ms, with re and enum, of a cold plugin call)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["pyroute2", "pyroute2_module"]

_init_lock = threading.RLock()


class _DeferredPackage(types.ModuleType):
    """pyroute2's package module before its ``__init__`` ran: the first missing attribute runs it."""

    def __getattr__(self, name: str) -> Any:
        if _find_spec(f"pyroute2.{name}") is not None:
            # A submodule not imported yet: ``from pyroute2 import config`` (which
            # pyroute2's own modules do) then imports it, as with any package.
            raise AttributeError(f"module 'pyroute2' has no attribute '{name}'")
        with _init_lock:
            if type(self) is _DeferredPackage and not self.__dict__.get("_pycni_initialising"):
                self.__dict__["_pycni_initialising"] = True
                try:
                    loader: Any = self.__spec__.loader  # type: ignore[union-attr]  # built from a spec with a loader
                    loader.exec_module(self)
                finally:
                    self.__class__ = types.ModuleType  # type: ignore[assignment]  # a plain module from now on
                    del self.__dict__["_pycni_initialising"]
        # Finished now (or this is its own __init__ asking, mid-way): plain lookup.
        try:
            return self.__dict__[name]
        except KeyError:
            raise AttributeError(f"module 'pyroute2' has no attribute '{name}'") from None


def _defer_package_init() -> None:
    with _init_lock:
        if "pyroute2" in sys.modules:
            return
        spec = _find_spec("pyroute2")
        if spec is None or spec.loader is None:
            return  # not installed: the import below raises ModuleNotFoundError as usual
        package = _module_from_spec(spec)
        package.__class__ = _DeferredPackage
        sys.modules["pyroute2"] = package


def pyroute2() -> Any:
    """The whole pyroute2 package (``IPRoute``, ``Conntrack``, ...), imported on first use."""
    package = _import_module("pyroute2")  # import_module: mypy wants no stubs pyroute2 doesn't ship
    package.IPRoute  # noqa: B018  # finishes a deferred package
    return package


def pyroute2_module(name: str) -> Any:
    """``pyroute2.<name>`` (e.g. "netlink.rtnl.ifinfmsg"), without running pyroute2's package ``__init__``."""
    _defer_package_init()
    return _import_module(f"pyroute2.{name}")


# importlib.util is imported when pyroute2 is, not before: a cold plugin call that
# never needs pyroute2 would pay ~1 ms for it (with warnings and importlib._abc).
def _find_spec(name: str) -> Any:
    from importlib.util import find_spec

    return find_spec(name)


def _module_from_spec(spec: Any) -> types.ModuleType:
    from importlib.util import module_from_spec

    return module_from_spec(spec)


def _import_module(name: str) -> Any:
    from importlib import import_module

    return import_module(name)
