"""Through the whole gateway, against a fake upstream with latency: concurrent misses of one
input are fetched once, and concurrent single misses travel together."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np

from tests.support.background import BackgroundLoop
from tests.support.fake_upstream import vector_for
from tests.support.stack import Stack

SMALL = "text-embedding-3-small"


async def embed_all(stack: Stack, inputs: list[str]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=10) as client:
        return await asyncio.gather(
            *(client.post("/embeddings", json={"model": SMALL, "input": text}) for text in inputs)
        )


def vector_of(response: httpx.Response) -> np.ndarray:
    return np.asarray(response.json()["data"][0]["embedding"], dtype=np.float32)


def test_fifty_concurrent_requests_for_one_new_input_make_one_upstream_input(
    stack: Stack,
) -> None:
    stack.upstream.set_delay(0.3)  # longer than 50 connections take to arrive on a busy machine
    responses = asyncio.run(embed_all(stack, ["the same new text"] * 50))
    assert stack.upstream.inputs_total == 1
    assert {r.status_code for r in responses} == {200}
    assert sum(r.headers["x-cache"] == "MISS" for r in responses) == 50
    for response in responses:
        np.testing.assert_array_equal(
            vector_of(response), vector_for(SMALL, "the same new text", 1536)
        )


def test_twenty_concurrent_single_misses_become_a_handful_of_upstream_calls(
    background: BackgroundLoop, backend: str
) -> None:
    # A window wider than the default 2 ms: on a busy machine the 20 requests can reach the
    # gateway spread over more than a few windows of 2 ms, and each window is its own call.
    stack = Stack(background, backend, {"fetch": {"batch_window_ms": 50}})
    try:
        stack.upstream.set_delay(0.2)  # the rest arrive while the first call is in flight
        texts = [f"text number {i}" for i in range(20)]
        responses = asyncio.run(embed_all(stack, texts))
        assert stack.upstream.request_count <= 4
        assert stack.upstream.inputs_total == 20
        for text, response in zip(texts, responses, strict=True):
            np.testing.assert_array_equal(vector_of(response), vector_for(SMALL, text, 1536))
    finally:
        stack.close()


def test_a_failed_shared_fetch_fails_every_waiter_and_the_next_request_retries(
    stack: Stack,
) -> None:
    stack.upstream.set_delay(0.02)
    stack.upstream.fail_next(100, status=400)
    responses = asyncio.run(embed_all(stack, ["doomed"] * 10))
    assert {r.status_code for r in responses} == {400}
    stack.upstream.reset()
    assert asyncio.run(embed_all(stack, ["doomed"]))[0].status_code == 200
