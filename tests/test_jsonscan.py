"""The commas outside strings, counted over raw bytes, match the values parsing would make."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway import jsonscan
from gateway.jsonscan import structural_commas

TRICKY_TEXT = st.text(alphabet=st.sampled_from(['"', "\\", ",", "a", "é", "\n", "[", "{", ":"]))
NUMBERS = st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False)
SCALARS = st.none() | st.booleans() | NUMBERS | TRICKY_TEXT
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner) | st.dictionaries(TRICKY_TEXT, inner),
    max_leaves=40,
)


def commas_of(value: Any) -> int:
    """What the commas between a parsed document's values number."""
    if isinstance(value, list):
        return max(len(value) - 1, 0) + sum(map(commas_of, value))
    if isinstance(value, dict):
        return max(len(value) - 1, 0) + sum(map(commas_of, value.values()))
    return 0


@given(DOCUMENTS)
def test_commas_outside_strings_are_those_between_values(document: Any) -> None:
    assert structural_commas(orjson.dumps(document)) == commas_of(document)


@given(DOCUMENTS)
def test_escapes_and_spacing_of_other_encoders_count_the_same(document: Any) -> None:
    body = json.dumps(document, indent=1, ensure_ascii=True).encode()
    assert structural_commas(body) == commas_of(document)


@given(DOCUMENTS)
def test_strings_that_cross_from_one_block_to_the_next_count_the_same(document: Any) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(jsonscan, "BLOCK", 3)
        assert structural_commas(orjson.dumps(document)) == commas_of(document)


@pytest.mark.parametrize(
    ("body", "commas"),
    [
        (b'["\\\\",1,"\\",",2]', 3),  # an escaped backslash ends its string; an escaped quote not
        (b'["\\\\\\",",1]', 1),
        (b'[1,"a,b', 1),  # an unterminated string runs to the end
        (b"", 0),
    ],
)
def test_escapes_and_unterminated_strings(body: bytes, commas: int) -> None:
    assert structural_commas(body) == commas
