"""pycni.spec.validate accepts exactly the names the spec's regular expression accepts."""

from __future__ import annotations

import itertools
import re

from pycni.spec.validate import _valid_id

SPEC_ID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")  # what the check replaced


def test_same_verdict_as_the_regular_expression() -> None:
    alphabet = ["a", "Z", "0", "_", ".", "-", "\n", " ", "é", "/", ":", "\t"]
    for length in range(5):
        for chars in itertools.product(alphabet, repeat=length):
            text = "".join(chars)
            assert _valid_id(text) == bool(SPEC_ID.match(text)), repr(text)
