"""The fake upstream speaks OpenAI's wire format, counts what it gets, and misbehaves on request."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import numpy as np
import pytest

from tests.support.background import BackgroundLoop
from tests.support.fake_upstream import FakeUpstream, encoding, truncate, vector_for

MODEL = "text-embedding-3-small"


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream(dims_by_model={MODEL: 1536, "tiny": 16}, models=[MODEL, "tiny"])
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def post(
    session: aiohttp.ClientSession, upstream: FakeUpstream, body: dict[str, Any], **kwargs: Any
) -> tuple[int, Any, aiohttp.ClientResponse]:
    async with session.post(f"{upstream.base_url}/embeddings", json=body, **kwargs) as response:
        return response.status, await response.json(), response


def from_base64(text: str) -> np.ndarray[Any, np.dtype[np.float32]]:
    return np.frombuffer(base64.b64decode(text), dtype="<f4")


async def test_float_and_base64_carry_the_same_unit_vector(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    body = {"model": MODEL, "input": ["hello", "world"]}
    _, floats, _ = await post(session, upstream, body)
    _, b64, _ = await post(session, upstream, {**body, "encoding_format": "base64"})
    for float_item, b64_item in zip(floats["data"], b64["data"], strict=True):
        vector = np.asarray(float_item["embedding"], dtype=np.float32)
        np.testing.assert_array_equal(vector, from_base64(b64_item["embedding"]))
    expected = vector_for(MODEL, "world", 1536)
    np.testing.assert_array_equal(from_base64(b64["data"][1]["embedding"]), expected)
    assert abs(float(np.linalg.norm(expected.astype(np.float64))) - 1) < 1e-6
    assert [item["index"] for item in floats["data"]] == [0, 1]
    assert list(floats) == ["object", "data", "model", "usage"]


async def test_text_and_its_token_ids_get_the_same_vector_and_usage(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    text = "The quick brown fox"
    ids = encoding().encode(text)
    _, by_text, _ = await post(session, upstream, {"model": MODEL, "input": text})
    _, by_ids, _ = await post(session, upstream, {"model": MODEL, "input": ids})
    _, nested, _ = await post(session, upstream, {"model": MODEL, "input": [ids, ids[:1]]})
    assert by_text["data"][0]["embedding"] == by_ids["data"][0]["embedding"]
    assert by_ids["data"][0]["embedding"] == nested["data"][0]["embedding"]
    assert by_text["usage"] == {"prompt_tokens": len(ids), "total_tokens": len(ids)}
    assert nested["usage"]["prompt_tokens"] == len(ids) + 1


async def test_dimensions_truncate_and_renormalise(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    body = {"model": MODEL, "input": "abc", "dimensions": 8, "encoding_format": "base64"}
    _, reply, _ = await post(session, upstream, body)
    vector = from_base64(reply["data"][0]["embedding"])
    np.testing.assert_array_equal(vector, truncate(vector_for(MODEL, "abc", 1536), 8))
    np.testing.assert_array_equal(vector, vector_for(MODEL, "abc", 1536, dimensions=8))
    assert vector.shape == (8,)
    assert abs(float(np.linalg.norm(vector.astype(np.float64))) - 1) < 1e-6


async def test_counters_record_requests_inputs_and_auth(session: aiohttp.ClientSession) -> None:
    fake = FakeUpstream(usage_multiplier=1.5)
    url = await fake.start()
    try:
        headers = {"Authorization": "Bearer sk-1"}
        body = {"model": "m", "input": ["a", "b", "a"]}
        async with session.post(f"{url}/embeddings", json=body, headers=headers) as response:
            usage = (await response.json())["usage"]
        async with session.post(f"{url[:-3]}/api/v1/embeddings", json={"model": "m", "input": []}):
            pass
    finally:
        await fake.stop()
    assert usage["prompt_tokens"] == round(3 * 1.5)
    assert (fake.request_count, fake.inputs_total, fake.inputs_embedded) == (2, 3, 3)
    assert fake.inputs_seen == {"a": 2, "b": 1}
    assert fake.auth_headers == ["Bearer sk-1", None]
    assert fake.requests[1] == {"model": "m", "input": []}
    fake.reset()
    assert (fake.request_count, fake.requests, fake.inputs_seen) == (0, [], {})


async def test_openai_error_envelopes(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    status, reply, _ = await post(session, upstream, {"model": "nope", "input": "x"})
    assert status == 404
    assert reply["error"]["code"] == "model_not_found"
    status, reply, _ = await post(session, upstream, {"model": MODEL, "input": ""})
    assert status == 400
    assert list(reply["error"]) == ["message", "type", "param", "code"]
    status, _, _ = await post(session, upstream, {"model": "tiny", "input": "x", "dimensions": 17})
    assert status == 400


async def test_fail_next_answers_the_given_errors_then_recovers(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.fail_next(1, status=429, retry_after=1, retry_after_ms=250)
    upstream.fail_next(1, status=503)
    body = {"model": MODEL, "input": "x"}
    status, reply, response = await post(session, upstream, body)
    assert (status, reply["error"]["type"], reply["error"]["code"]) == (
        429,
        "rate_limit_error",
        "rate_limit_exceeded",
    )
    assert (response.headers["retry-after"], response.headers["retry-after-ms"]) == ("1", "250")
    status, reply, _ = await post(session, upstream, body)
    assert (status, reply["error"]["type"]) == (503, "server_error")
    assert (await post(session, upstream, body))[0] == 200
    assert upstream.inputs_total == 3
    assert upstream.inputs_embedded == 1


async def test_drop_next_closes_the_connection(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.drop_next(1)
    with pytest.raises(aiohttp.ClientConnectionError):
        await post(session, upstream, {"model": MODEL, "input": "x"})
    assert (await post(session, upstream, {"model": MODEL, "input": "x"}))[0] == 200


async def test_hang_next_never_answers_and_stop_is_prompt(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.hang_next(1)
    timeout = aiohttp.ClientTimeout(total=0.2)
    pending = asyncio.create_task(
        post(session, upstream, {"model": MODEL, "input": "x"}, timeout=timeout)
    )
    with pytest.raises(asyncio.TimeoutError):
        await pending
    started = time.monotonic()
    await upstream.stop()
    assert time.monotonic() - started < 0.5


async def test_set_delay_slows_every_answer_and_concurrency_is_tracked(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.set_delay(0.1)
    started = time.monotonic()
    body = {"model": MODEL, "input": "x"}
    replies = await asyncio.gather(*(post(session, upstream, body) for _ in range(3)))
    assert 0.1 <= time.monotonic() - started < 0.5
    assert [status for status, _, _ in replies] == [200, 200, 200]
    assert upstream.max_concurrency == 3


async def test_fail_rate_fails_about_that_fraction(
    upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    upstream.fail_rate(0.5, statuses=(502,), seed=1)
    body = {"model": MODEL, "input": "x"}
    statuses = [(await post(session, upstream, body))[0] for _ in range(40)]
    assert set(statuses) == {200, 502}
    assert 8 <= statuses.count(502) <= 32


def test_background_loop_serves_a_sync_client() -> None:
    fake = FakeUpstream()
    with BackgroundLoop() as background:
        port = background.start_app(fake.make_app())
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/embeddings",
            data=json.dumps({"model": "m", "input": "hi"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            reply = json.loads(response.read())
        base_url = background.run(fake.start())
        assert base_url.endswith("/v1")
        background.run(fake.stop())
    assert len(reply["data"][0]["embedding"]) == 1536
    assert fake.request_count == 1
