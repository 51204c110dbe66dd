"""Bodies parsed in a pool process validate exactly as bodies parsed in place, and the
serving process receives token lists as compact arrays."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Callable, Iterator

import httpx
import orjson
import pytest

from gateway.bodyparse import (
    SCRATCH,
    SHARED_MEMORY_AT_LEAST,
    ParsePool,
    lighten,
    lighten_file,
    scratch_folder,
    scratch_writer,
)
from gateway.catalog import Catalog
from gateway.errors import GatewayError, ServiceUnavailable, TokensPerRequestExceeded
from gateway.protocol import (
    MAX_JSON_VALUES,
    EmbeddingRequest,
    TokenRows,
    embedding_request,
    parse_embedding_request,
)
from tests.support.stack import Stack, own_stack, shipped_settings

CATALOG = Catalog.from_settings(shipped_settings("http://unused", "").models)
SMALL = "text-embedding-3-small"

BODIES = [
    b'{"model":"text-embedding-3-small","input":[[1,2,3],[4,5]]}',
    b'{"model":"text-embedding-3-small","input":[1,2,3],"encoding_format":"base64"}',
    b'{"model":"text-embedding-3-small","input":["a","b"],"dimensions":8,"user":"u"}',
    b'{"model":"text-embedding-3-small","input":[[1,true]]}',
    b'{"model":"text-embedding-3-small","input":[[1,2.5]]}',
    b'{"model":"text-embedding-3-small","input":[[[1]]]}',
    b'{"model":"text-embedding-3-small","input":[[]]}',
    b'{"model":"text-embedding-3-small","input":[[1],"a"]}',
    b'{"model":"text-embedding-3-small","input":[[1],[2],[3,true],[-5]]}',
    b'{"model":"text-embedding-3-small","input":[[1],[2,99999999,-3],[-5]]}',
    b'{"model":"text-embedding-3-small","input":[[1],[],[2]]}',
    b'{"model":"text-embedding-3-small","input":[[1],{"a":1}]}',
    b'{"model":"text-embedding-3-small","input":[[1],[[2]]]}',
    b'{"model":"text-embedding-3-small","input":[[1,2],3]}',
    b'{"model":"text-embedding-3-small","input":[1,2,-3,99999999]}',
    b'{"model":"text-embedding-3-small","input":[1,"a"]}',
    b'{"model":"text-embedding-3-small","input":' + orjson.dumps([[1]] * 2049) + b"}",
    b'{"model":"text-embedding-3-small","input":' + orjson.dumps([[1]] * 2048) + b"}",
    b'{"model":"text-embedding-3-small","input":[[1,2]],"encoding_format":"hex"}',
    b'{"model":"text-embedding-3-small","input":[-1]}',
    b'{"model":"text-embedding-3-small","input":[[99999999]]}',
    b'{"model":"text-embedding-3-small","input":[18446744073709551615]}',
    b'{"model":"no-such-model","input":[[1,true]]}',
    b'{"model":"text-embedding-3-small","input":[[1]],"extra":[1,2,3]}',
    b"[]",
    b"not json",
]


def outcome(parse: object) -> tuple[str, object]:
    """The request's fields, or the error's status and envelope."""
    try:
        assert callable(parse)
        request = parse()
    except GatewayError as exc:
        return "error", (exc.status, exc.message, exc.param, exc.code)
    assert isinstance(request, EmbeddingRequest)
    inputs = [i if isinstance(i, str) else i.tolist() for i in request.inputs]
    return "ok", (request.model.name, inputs, request.encoding_format, request.dimensions)


@pytest.mark.parametrize("body", BODIES)
def test_a_body_parsed_elsewhere_validates_as_one_parsed_here(body: bytes) -> None:
    here = outcome(lambda: parse_embedding_request(body, CATALOG))
    elsewhere = outcome(lambda: embedding_request(lighten(body), CATALOG))
    assert elsewhere == here


def parse_elsewhere(body: bytes, catalog: Catalog) -> EmbeddingRequest:
    return embedding_request(lighten(body), catalog)


def over_the_value_limit(tail: bytes = b"}") -> bytes:
    rows = [[1] * 3000] * (MAX_JSON_VALUES // 3000 + 1)
    return b'{"model":"text-embedding-3-small","input":' + orjson.dumps(rows) + tail


@pytest.mark.parametrize("parse", [parse_embedding_request, parse_elsewhere])
def test_a_body_of_more_values_than_any_request_is_refused_before_parsing(
    parse: Callable[[bytes, Catalog], EmbeddingRequest],
) -> None:
    body = over_the_value_limit(tail=b",not json")  # a parser would have stopped at the tail
    with pytest.raises(TokensPerRequestExceeded) as refused:
        parse(body, CATALOG)
    values = body.count(b",") + 1  # no string here holds a comma
    assert refused.value.message == (
        f"Requested {values} values or more, max 300000 tokens per request"
    )
    assert (refused.value.status, refused.value.code) == (400, "max_tokens_per_request")


@pytest.mark.parametrize("parse", [parse_embedding_request, parse_elsewhere])
def test_commas_inside_strings_are_no_values(
    parse: Callable[[bytes, Catalog], EmbeddingRequest],
) -> None:
    text = "a," * MAX_JSON_VALUES
    body = orjson.dumps({"model": SMALL, "input": [text, "b"]})
    assert parse(body, CATALOG).inputs == [text, "b"]


def test_valid_token_lists_come_back_as_one_four_byte_buffer() -> None:
    light = lighten(b'{"model":"m","input":[[1,2,3],[70000]]}')
    assert isinstance(light, dict)
    rows = light["input"]
    assert isinstance(rows, TokenRows)
    assert (rows.flat.dtype.str, rows.flat.tolist()) == ("<u4", [1, 2, 3, 70000])
    assert (rows.lengths.tolist(), rows.single) == ([3, 1], False)


def test_of_invalid_lists_only_the_first_invalid_one_comes_back() -> None:
    light = lighten(b'{"model":"m","input":[[1,2,3],[4,5],[6,-7,8],[9]]}')
    assert isinstance(light, dict)
    assert [item.tolist() for item in light["input"]] == [[0], [0], [-7, 8]]


def test_fields_validation_never_reads_are_left_behind() -> None:
    light = lighten(b'{"model":"m","input":"x","padding":[1,2,3]}')
    assert light == {"model": "m", "input": "x"}


@pytest.mark.parametrize(
    ("body", "left"), [(b'{"model":"m","input":"x"}', 0), (b'{"model":"m","input":[5,6]}', 8)]
)
def test_the_pool_process_frees_the_body_it_read(body: bytes, left: int) -> None:
    """The serving process's unlink then frees only what the pool process wrote back."""
    with tempfile.NamedTemporaryFile(dir=SCRATCH) as scratch:
        scratch.write(body)
        scratch.flush()
        lighten_file(scratch.name)
        assert os.path.getsize(scratch.name) == left


def test_the_pool_process_parses_a_body() -> None:
    async def parse() -> object:
        pool = ParsePool(1)
        try:
            return await pool.parse(b'{"model":"m","input":[5,6]}')
        finally:
            pool.close()

    light = asyncio.run(parse())
    assert isinstance(light, dict)
    assert light["input"].flat.tolist() == [5, 6]


def test_the_pool_process_leaves_no_scratch_file_behind() -> None:
    def scratch_files() -> set[str]:
        return {name for name in os.listdir(SCRATCH) if name.startswith("gateway-body-")}

    before = scratch_files()

    async def parse() -> object:
        pool = ParsePool(1)
        try:
            return await pool.parse(orjson.dumps({"model": "m", "input": [[7] * 100] * 50}))
        finally:
            pool.close()

    light = asyncio.run(parse())
    assert isinstance(light, dict)
    assert light["input"].lengths.tolist() == [100] * 50
    assert scratch_files() == before


def test_a_full_scratch_folder_is_a_503_to_retry() -> None:
    full = open("/dev/full", "wb", buffering=0)  # noqa: SIM115 - every write: no space left
    with full, pytest.raises(ServiceUnavailable):
        scratch_writer(full)(b'{"model":"m","input":[5,6]}')


def test_the_scratch_folder_is_shared_memory_where_it_is_big_enough() -> None:
    room = os.statvfs("/dev/shm")
    big = room.f_blocks * room.f_frsize >= SHARED_MEMORY_AT_LEAST
    assert scratch_folder() == ("/dev/shm" if big else tempfile.gettempdir())


def test_a_parse_process_that_died_is_replaced() -> None:
    body = b'{"model":"m","input":[5,6]}'

    async def parse_around_a_death() -> list[object]:
        pool = ParsePool(1)
        try:
            await pool.parse(body)
            executor = pool._pool
            assert executor is not None
            for process in list(executor._processes.values()):  # what the OOM killer does
                process.kill()
            outcomes: list[object] = []
            for _ in range(2):
                try:
                    outcomes.append(await pool.parse(body))
                except GatewayError as exc:
                    outcomes.append(exc.status)
            return outcomes
        finally:
            pool.close()

    died, replaced = asyncio.run(parse_around_a_death())
    assert died == 503
    assert isinstance(replaced, dict)
    assert replaced["input"].flat.tolist() == [5, 6]


@pytest.fixture(scope="module")
def gateway() -> Iterator[Stack]:
    with own_stack() as stack:
        yield stack


def test_a_large_token_body_is_embedded_with_its_own_tokens(gateway: Stack) -> None:
    tokens = [[10_000 + (i * 7 + j) % 50_000 for j in range(4096)] for i in range(48)]  # 1.2 MB
    body = orjson.dumps({"model": SMALL, "input": tokens})
    assert len(body) > 1024 * 1024
    response = httpx.post(f"{gateway.base_url}/embeddings", content=body, timeout=30)
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]) == 48
    sent = [item for call in gateway.upstream.requests for item in call["input"]]
    assert sorted(map(tuple, sent)) == sorted(map(tuple, tokens))


def test_a_body_of_too_many_values_is_refused_without_an_upstream_call(gateway: Stack) -> None:
    calls = len(gateway.upstream.requests)
    response = httpx.post(f"{gateway.base_url}/embeddings", content=over_the_value_limit())
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "max_tokens_per_request"
    assert len(gateway.upstream.requests) == calls
