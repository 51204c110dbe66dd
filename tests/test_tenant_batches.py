"""Micro-batches never cross a cache scope, and a combined upstream call refused with a 4xx is
resolved per request: one tenant never fails for, or reads, another tenant's input."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence

import httpx
import numpy as np
import pytest

from gateway.catalog import Model
from gateway.coalesce import CoalescingFetcher
from gateway.codec import Entry
from gateway.errors import GatewayError, upstream_client_error
from gateway.fetch import Miss
from gateway.microbatch import MicroBatchingFetcher
from gateway.settings import hash_key
from tests.support.background import BackgroundLoop
from tests.support.fake_upstream import vector_for
from tests.support.stack import Stack
from tests.test_coalesce import MODEL, RecordingFetcher, entry_for, misses, settle

SMALL = "text-embedding-3-small"
A_KEY, B_KEY = "sk-tenant-a-secret", "sk-tenant-b-secret"
A_TEXT = "tenant A's confidential forbidden words"
B_TEXTS = ["tenant B's first innocent text", "tenant B's second innocent text"]


def tenants_config(scope: str) -> dict[str, object]:
    return {
        "auth": {
            "keys": [
                {"name": "tenant-a", "sha256": hash_key(A_KEY)},
                {"name": "tenant-b", "sha256": hash_key(B_KEY)},
            ],
            "cache_scope": scope,
        },
        # Misses arriving while a call is in flight wait for it: they would share one batch.
        "fetch": {"batch_window_ms": 5000},
    }


@pytest.fixture(params=["key", "shared"])
def two_tenants(request: pytest.FixtureRequest, background: BackgroundLoop) -> Iterator[Stack]:
    stack = Stack(background, "", tenants_config(request.param))
    stack.upstream.refuse_containing = "forbidden"
    yield stack
    stack.close()


async def embed(client: httpx.AsyncClient, key: str, texts: list[str]) -> httpx.Response:
    body = {"model": SMALL, "input": texts, "encoding_format": "float"}
    return await client.post("/embeddings", json=body, headers={"Authorization": f"Bearer {key}"})


async def while_a_call_is_in_flight(stack: Stack) -> tuple[httpx.Response, httpx.Response]:
    stack.upstream.set_delay(0.3)
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=10) as client:
        warming = asyncio.create_task(embed(client, A_KEY, ["a call already in flight"]))
        while stack.upstream.in_flight == 0:
            await asyncio.sleep(0.005)
        stack.upstream.set_delay(0.0)
        a, b = await asyncio.gather(embed(client, A_KEY, [A_TEXT]), embed(client, B_KEY, B_TEXTS))
        assert (await warming).status_code == 200
    return a, b


async def test_a_refused_input_fails_only_its_own_tenant(two_tenants: Stack) -> None:
    a, b = await while_a_call_is_in_flight(two_tenants)
    assert b.status_code == 200, b.text
    assert A_TEXT not in b.text and "forbidden" not in b.text
    for item, text in zip(b.json()["data"], B_TEXTS, strict=True):
        got = np.asarray(item["embedding"], dtype=np.float32)
        np.testing.assert_array_equal(got, vector_for(SMALL, text, 1536))
    assert a.status_code == 400
    assert "B's" not in a.text


async def test_under_key_scope_no_upstream_call_mixes_tenants(background: BackgroundLoop) -> None:
    stack = Stack(background, "", tenants_config("key"))
    try:
        await while_a_call_is_in_flight(stack)
        for sent in stack.upstream.requests:
            inputs = " ".join(map(str, sent.get("input", [])))
            assert not ("tenant A" in inputs and "tenant B" in inputs), sent
    finally:
        stack.close()


class RefusingFetcher:
    """Refuses any call that holds the key ``bad``, quoting it, after the gate opens."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.calls: list[list[bytes]] = []

    async def fetch(
        self, model: Model, dimensions: int | None, misses: Sequence[Miss]
    ) -> list[Entry]:
        self.calls.append([m.key for m in misses])
        await self.gate.wait()
        if any(m.key == b"bad" for m in misses):
            raise upstream_client_error(400, "content rejected: 'bad'", "input", None)
        return [entry_for(m.key) for m in misses]


async def test_a_coalesced_waiter_gets_only_its_own_inputs_result() -> None:
    inner = RefusingFetcher()
    coalescer = CoalescingFetcher(inner)
    first = asyncio.create_task(coalescer.fetch(MODEL, None, misses(b"bad", b"shared")))
    await settle()
    second = asyncio.create_task(coalescer.fetch(MODEL, None, misses(b"shared")))
    await settle()
    inner.gate.set()
    assert await second == [entry_for(b"shared")]
    with pytest.raises(GatewayError, match="bad"):
        await first
    assert inner.calls == [[b"bad", b"shared"], [b"shared"]]


async def test_requests_of_different_cache_scopes_are_never_batched_together() -> None:
    inner = RecordingFetcher(held=True)
    fetcher = MicroBatchingFetcher(inner, window=5.0)
    in_flight = asyncio.create_task(fetcher.fetch(MODEL, None, misses(b"x")))
    await settle()
    scoped = [
        Miss(key, key.decode(), 1, scope) for key, scope in ((b"a", "key:a"), (b"b", "key:b"))
    ]
    waiting = [asyncio.create_task(fetcher.fetch(MODEL, None, [miss])) for miss in scoped]
    await settle()
    inner.release()
    await asyncio.gather(in_flight, *waiting)
    assert sorted(inner.calls) == [[b"a"], [b"b"], [b"x"]]
