"""An in-memory nft runner, for tests of code that reads nftables and applies scripts.

``FakeNft`` stands where ``pycni.net.nft`` would (the ``list_json`` /
``apply`` seam, e.g. portmap's ``NftRunner``): ``list_json`` answers with
a fixed listing (a JSON ruleset's items, as ``nft -j list`` gives them)
and ``apply`` records each script instead of running it. ``lock`` is a
host lock that only counts how often it was taken::

    fake = FakeNft(items, listing="table inet pycni-portmap")
    backend = NftBackend(fake, fake.lock)
    backend.gc("net1", set())
    assert fake.locks == 1 and len(fake.scripts) == 1
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["FakeNft"]


class FakeNft:
    """An nft runner that replays a fixed listing and records scripts."""

    def __init__(self, items: list[dict[str, Any]], listing: str | None = None) -> None:
        self.items = items
        #: When set, the one thing ``list_json`` may be asked to list (anything else is a test failure).
        self.listing = listing
        self.scripts: list[str] = []
        self.locks = 0

    def list_json(self, what: str) -> list[dict[str, Any]]:
        if self.listing is not None and what != self.listing:
            raise AssertionError(f"listed {what!r}, expected {self.listing!r}")
        return self.items

    def apply(self, script: str) -> None:
        self.scripts.append(script)

    @contextmanager
    def lock(self) -> Iterator[None]:
        self.locks += 1
        yield
