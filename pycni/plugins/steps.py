"""How main plugins run the steps of a failed ADD's cleanup, of DEL and of GC.

Contract:

- ``UndoStack``: an ADD pushes the undo of each step as the step
  succeeds; if the body of ``with UndoStack() as undo:`` fails, the undos
  run newest first and the body's error is re-raised. An undo's own
  failure is reported on stderr, never instead of the real error.
  ``undone_on_failure(undo, what)`` is the one-step form.
- ``Attempts``: DEL and GC steps that must all run even when one fails;
  each step's CniError is kept and ``raise_first()`` raises the first.
- ``container_addresses(args)``: the addresses the prevResult gives the
  container interface, for a DEL whose netns (and so the link) is gone.
- ``delete_container_link_with_addresses(args)``: delete CNI_IFNAME in CNI_NETNS and say
  which addresses it had; a vanished netns or link is not an error.

pycni.net is imported inside the functions: a VERSION call never pays for it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType

from pycni.spec.errors import CniError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~4 ms, with re and enum, of a cold plugin call)
if TYPE_CHECKING:
    from ipaddress import IPv4Interface, IPv6Interface
    from typing import Any, TypeVar

    from pycni.skel import CmdArgs

    T = TypeVar("T")

__all__ = ["Attempts", "UndoStack", "container_addresses", "delete_container_link_with_addresses", "undone_on_failure"]


class UndoStack:
    """The cleanup of a half-done ADD: run newest first if the ``with`` body fails.

    ``what`` says what an undo does ("delete veth 'veth1a2b'"), for the
    stderr line when it fails.
    """

    def __init__(self) -> None:
        self._steps: list[tuple[str, Callable[[], object]]] = []

    def push(self, what: str, undo: Callable[[], object]) -> None:
        self._steps.append((what, undo))

    def run(self) -> None:
        """Run every undo, newest first; failures go to stderr only."""
        while self._steps:
            what, undo = self._steps.pop()
            try:
                undo()
            except Exception as exc:  # the ADD's own error is the one to report
                print(f"pycni: failed to {what} after a failed ADD: {exc}", file=sys.stderr)

    def __enter__(self) -> UndoStack:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self.run()


@contextmanager
def undone_on_failure(undo: Callable[[], object], what: str) -> Iterator[None]:
    """Run ``undo`` if the body fails, then re-raise the body's error (an UndoStack of one)."""
    with UndoStack() as stack:
        stack.push(what, undo)
        yield


class Attempts:
    """Steps that must all be tried; their CniErrors are kept and the first is raised at the end.

    ``attempt(step, *args)`` returns the step's value, or None when it
    failed. Only CniErrors are kept: anything else is a bug and propagates.
    """

    def __init__(self) -> None:
        self.errors: list[CniError] = []

    def __call__(self, step: Callable[..., T], *args: Any) -> T | None:
        try:
            return step(*args)
        except CniError as exc:
            self.errors.append(exc)
            return None

    def raise_first(self) -> None:
        if self.errors:
            raise self.errors[0]


def container_addresses(args: CmdArgs) -> list[IPv4Interface | IPv6Interface]:
    """The container interface's addresses according to the prevResult ([] without a readable one).

    The container interface is the one named CNI_IFNAME with a sandbox. An
    IP counts when its ``interface`` index names it, or when it has no
    index: the spec ties such an IP to no interface, and portmap and sbr
    read it as the container's. An IP pointing at another interface does not.
    """
    try:
        prev = args.prev_result()
    except CniError:
        return []  # an unreadable prevResult must not block DEL
    if prev is None:
        return []
    index = next((i for i, iface in enumerate(prev.interfaces) if iface.name == args.ifname and iface.sandbox), None)
    return [ipc.address for ipc in prev.ips if ipc.interface is None or ipc.interface == index]


def delete_container_link_with_addresses(args: CmdArgs) -> tuple[bool, list[IPv4Interface | IPv6Interface]]:
    """Delete CNI_IFNAME in CNI_NETNS: (whether it was deleted here, the addresses it had).

    No CNI_NETNS, a netns path that is gone or is no netns, and a missing
    link all give (False, []): there is nothing of ours left in there.
    """
    if not args.netns:
        return False, []
    from pycni.net.errors import NetnsNotFound, NotANetns
    from pycni.net.netns import run_in_netns

    try:
        return run_in_netns(args.netns, _read_and_delete, args.ifname)
    except (NetnsNotFound, NotANetns):
        return False, []


def _read_and_delete(ifname: str) -> tuple[bool, list[IPv4Interface | IPv6Interface]]:
    """Inside the container: the link's addresses, then the link deleted."""
    from pycni.net.addrs import list_addresses
    from pycni.net.errors import LinkNotFound
    from pycni.net.links import delete_link

    try:
        addresses = list_addresses(ifname)
    except LinkNotFound:
        return False, []
    return delete_link(ifname, missing_ok=True), addresses
