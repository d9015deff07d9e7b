"""A kernel test whose prerequisite is missing: skipped, or failed when CI requires kernel tests.

``PYCNI_REQUIRE_KERNEL_TESTS=1`` (set by .ci/run) turns every such skip into a
failure, so a broken CI setup cannot pass silently.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

__all__ = ["skip_or_fail"]


def skip_or_fail(reason: str, failure: str) -> NoReturn:
    """Skip with ``reason``; under ``PYCNI_REQUIRE_KERNEL_TESTS=1`` fail with ``failure`` instead."""
    if os.environ.get("PYCNI_REQUIRE_KERNEL_TESTS") == "1":
        pytest.fail(failure)
    pytest.skip(reason)
