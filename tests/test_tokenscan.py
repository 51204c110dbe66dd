"""Token lists read straight from the bytes are exactly what a JSON parser reads, or declined."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.bodyparse import lighten
from gateway.protocol import embedding_request, parse_embedding_request
from gateway.tokenscan import scan
from tests.test_bodyparse import CATALOG, outcome

SMALL = "text-embedding-3-small"
SPACE = st.sampled_from(["", "", " ", "\n  ", "\t", "\r\n"])
# Mostly ids; now and then something only a JSON parser may judge.
ODD_NUMBERS = st.sampled_from(["-1", "-0", "01", "1.0", "1e3", "true", "null", '"7"', "[]"])
NUMBERS = st.integers(0, 200_000).map(str) | st.integers(0, 10**20).map(str) | ODD_NUMBERS


@st.composite
def listed(draw: st.DrawFn, items: st.SearchStrategy[str]) -> str:
    """A JSON list of `items`, with spaces drawn around each of them."""
    values = [draw(SPACE) + value + draw(SPACE) for value in draw(st.lists(items, max_size=6))]
    return "[" + draw(SPACE) + ",".join(values) + "]"


TOKEN_LIST = listed(st.integers(0, 200_000).map(str) | st.just("100258"))
INPUT_VALUES = (
    TOKEN_LIST
    | listed(TOKEN_LIST)
    | listed(NUMBERS)
    | listed(listed(NUMBERS) | NUMBERS)
    | st.just('"text"')
)
OTHER_FIELDS = st.sampled_from(
    [
        "",
        ',"encoding_format":"base64"',
        ',"dimensions":8,"user":"[[1]]"',
        ',"user":"\\"input\\": [1]"',
        ',"input":[[5]]',
        ',"\\u0069nput":[9]',
        ',"extra":{"input":[1]}',
        ',"model":"no-such-model"',
        "]",
    ]
)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    value = draw(INPUT_VALUES)
    model = f'"model"{draw(SPACE)}:{draw(SPACE)}"{SMALL}"'
    field = f'"input"{draw(SPACE)}:{draw(SPACE)}{value}'
    first, second = (model, field) if draw(st.booleans()) else (field, model)
    return ("{" + first + "," + second + draw(OTHER_FIELDS) + "}").encode()


@given(bodies())
def test_a_body_read_either_way_validates_the_same(body: bytes) -> None:
    here = outcome(lambda: parse_embedding_request(body, CATALOG))
    elsewhere = outcome(lambda: embedding_request(lighten(body), CATALOG))
    assert elsewhere == here


@given(listed(TOKEN_LIST) | TOKEN_LIST, SPACE)
def test_plain_token_lists_are_read_without_the_parser(value: str, space: str) -> None:
    parsed = orjson.loads(value)
    single = not isinstance(parsed[0], list) if parsed else False
    rows = [parsed] if single else parsed
    if not parsed or not all(rows):
        return  # empty lists are the parser's to refuse
    scanned = scan(f'{{"model":"m",{space}"input":{space}{value}}}'.encode())
    assert scanned is not None
    assert scanned.ids.tolist() == [i for row in rows for i in row]
    assert (scanned.lengths.tolist(), scanned.single) == ([len(row) for row in rows], single)
    assert scanned.fields == {"model": "m"}


def test_an_indented_body_is_read_without_the_parser() -> None:
    body = json.dumps({"model": SMALL, "input": [[1, 2], [3]], "user": "u"}, indent=2).encode()
    scanned = scan(body)
    assert scanned is not None
    assert (scanned.ids.tolist(), scanned.lengths.tolist()) == ([1, 2, 3], [2, 1])
    assert scanned.fields == {"model": SMALL, "user": "u"}


@pytest.mark.parametrize(
    "value",
    [
        "[1,-2]",  # negative
        "[1,2.5]",
        "[01]",  # a leading zero is not JSON
        "[12345678901234567890]",  # more than an int64 holds
        "[[1],[]]",
        "[[[1]]]",
        "[[1],2]",
        "[1,[2]]",
        "[1 2]",
        "[1,]",
        "[[1],,[2]]",
        "[1,true]",
    ],
)
def test_anything_but_plain_lists_is_left_to_the_parser(value: str) -> None:
    assert scan(f'{{"model":"m","input":{value}}}'.encode()) is None


@pytest.mark.parametrize(
    "body",
    [
        b'{"model":"m","input":[1],"input":"text"}',  # the last of duplicate keys counts
        b'{"model":"m","input":[1],"\\u0069nput":"text"}',
        b'{"model":"m","extra":{"input":[1]}}',  # not the top level's
        b'{"model":"m","input":[1]',  # not JSON after all
        b'["input":[1]]',
    ],
)
def test_lists_that_are_not_the_bodys_input_are_left_to_the_parser(body: bytes) -> None:
    assert scan(body) is None


def test_a_large_body_of_ids_is_read_as_int64() -> None:
    ids = np.arange(300_000) % 100_000
    scanned = scan(orjson.dumps({"model": "m", "input": ids.reshape(100, -1).tolist()}))
    assert scanned is not None
    assert np.array_equal(scanned.ids, ids)
    assert scanned.lengths.tolist() == [3000] * 100


def test_each_of_many_lists_is_counted() -> None:
    lists = [[index % 7] * (index % 3 + 1) for index in range(5000)]
    scanned = scan(orjson.dumps({"model": "m", "input": lists}))
    assert scanned is not None
    assert scanned.lengths.tolist() == [len(ids) for ids in lists]
