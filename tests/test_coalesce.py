"""CoalescingFetcher: one upstream fetch per key in flight, shared by every request that needs it.

RecordingFetcher, the inner Fetcher double, is also used by tests/test_microbatch.py.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.catalog import Model
from gateway.coalesce import CoalescingFetcher
from gateway.codec import Entry
from gateway.errors import UpstreamError
from gateway.fetch import Fetcher, Miss
from gateway.microbatch import MicroBatchingFetcher

MODEL = Model(
    name="test-embedding",
    dimensions=4,
    max_tokens=8191,
    price_per_million=0.02,
    supports_dimensions=True,
    derive_dimensions=False,
    cl100k=True,
    cache_id="test-embedding",
    owned_by="test",
    display_name="test-embedding",
    description="",
    deployments=(),
)


def entry_for(key: bytes) -> Entry:
    return Entry(hashlib.sha256(key).digest()[:16], len(key))


def miss(key: bytes) -> Miss:
    return Miss(key, key.decode(), len(key))


def misses(*keys: bytes) -> list[Miss]:
    return [miss(key) for key in keys]


class RecordingFetcher:
    """Records each call's keys; waits until released (at once unless `held`), sleeps `delay`,
    yields `yields` times, then raises `error` or returns an entry derived from each key."""

    def __init__(self, held: bool = False) -> None:
        self.calls: list[list[bytes]] = []
        self._gate = asyncio.Event()
        if not held:
            self._gate.set()
        self.delay = 0.0
        self.yields = 0
        self.error: Exception | None = None
        self.cancelled = 0

    async def fetch(
        self, model: Model, dimensions: int | None, misses: Sequence[Miss]
    ) -> list[Entry]:
        self.calls.append([m.key for m in misses])
        try:
            await self._wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if self.error is not None:
            raise self.error
        return [entry_for(m.key) for m in misses]

    def release(self) -> None:
        self._gate.set()

    async def _wait(self) -> None:
        await self._gate.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        for _ in range(self.yields):
            await asyncio.sleep(0)


async def settle() -> None:
    """Let every ready task run until it blocks (no wall-clock time passes)."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_concurrent_requests_for_one_new_key_make_one_inner_fetch() -> None:
    inner = RecordingFetcher()
    coalescer = CoalescingFetcher(inner)
    results = await asyncio.gather(*(coalescer.fetch(MODEL, None, misses(b"k")) for _ in range(50)))
    assert inner.calls == [[b"k"]]
    assert results == [[entry_for(b"k")]] * 50
    assert (coalescer.coalesced, coalescer.fetched) == (49, 1)


async def test_keys_not_in_flight_go_to_the_inner_fetcher_together() -> None:
    inner = RecordingFetcher(held=True)
    coalescer = CoalescingFetcher(inner)
    first = asyncio.create_task(coalescer.fetch(MODEL, None, misses(b"a")))
    await settle()
    second = asyncio.create_task(coalescer.fetch(MODEL, None, misses(b"b", b"a", b"c")))
    await settle()
    inner.release()
    assert await second == [entry_for(b"b"), entry_for(b"a"), entry_for(b"c")]
    assert await first == [entry_for(b"a")]
    assert inner.calls == [[b"a"], [b"b", b"c"]]


async def test_duplicate_keys_in_one_request_are_fetched_once() -> None:
    inner = RecordingFetcher()
    result = await CoalescingFetcher(inner).fetch(MODEL, None, misses(b"a", b"b", b"a"))
    assert result == [entry_for(b"a"), entry_for(b"b"), entry_for(b"a")]
    assert inner.calls == [[b"a", b"b"]]


async def test_a_failure_reaches_every_waiter_as_the_same_exception() -> None:
    inner = RecordingFetcher()
    inner.error = UpstreamError("upstream down")
    coalescer = CoalescingFetcher(inner)
    outcomes = await asyncio.gather(
        *(coalescer.fetch(MODEL, None, misses(b"k")) for _ in range(3)),
        return_exceptions=True,
    )
    assert all(outcome is inner.error for outcome in outcomes)
    assert inner.calls == [[b"k"]]


async def test_the_next_request_after_a_failure_retries() -> None:
    inner = RecordingFetcher()
    inner.error = UpstreamError("upstream down")
    coalescer = CoalescingFetcher(inner)
    with pytest.raises(UpstreamError):
        await coalescer.fetch(MODEL, None, misses(b"k"))
    inner.error = None
    assert await coalescer.fetch(MODEL, None, misses(b"k")) == [entry_for(b"k")]
    assert inner.calls == [[b"k"], [b"k"]]


async def test_a_finished_fetch_is_not_joined_later() -> None:
    inner = RecordingFetcher()
    coalescer = CoalescingFetcher(inner)
    await coalescer.fetch(MODEL, None, misses(b"k"))
    await coalescer.fetch(MODEL, None, misses(b"k"))
    assert inner.calls == [[b"k"], [b"k"]]


async def test_a_cancelled_waiter_does_not_cancel_the_shared_fetch() -> None:
    inner = RecordingFetcher(held=True)
    coalescer = CoalescingFetcher(inner)
    starter = asyncio.create_task(coalescer.fetch(MODEL, None, misses(b"k")))
    await settle()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0):
            await coalescer.fetch(MODEL, None, misses(b"k"))
    inner.release()
    assert await starter == [entry_for(b"k")]
    assert inner.cancelled == 0


async def test_cancelling_the_request_that_started_a_fetch_does_not_cancel_it() -> None:
    inner = RecordingFetcher(held=True)
    coalescer = CoalescingFetcher(inner)
    starter = asyncio.create_task(coalescer.fetch(MODEL, None, misses(b"k")))
    await settle()
    joiner = asyncio.create_task(coalescer.fetch(MODEL, None, misses(b"k")))
    await settle()
    starter.cancel()
    await settle()
    inner.release()
    assert await joiner == [entry_for(b"k")]
    assert starter.cancelled()
    assert inner.cancelled == 0


async def test_a_failure_nobody_waits_for_any_more_is_still_retrieved() -> None:
    reported: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: reported.append(context))
    inner = RecordingFetcher(held=True)
    inner.error = UpstreamError("upstream down")
    coalescer = CoalescingFetcher(inner)
    waiter = asyncio.create_task(coalescer.fetch(MODEL, None, misses(b"k")))
    await settle()
    waiter.cancel()
    await settle()
    inner.release()
    await settle()
    gc.collect()
    assert reported == []
    assert inner.calls == [[b"k"]]


KEYS = st.sampled_from([b"a", b"b", b"c", b"d", b"e"])
REQUESTS = st.lists(
    st.tuples(st.lists(KEYS, min_size=1, max_size=4), st.integers(0, 3)),
    min_size=1,
    max_size=8,
)


def run_concurrently(
    fetcher: Fetcher, requests: list[tuple[list[bytes], int]]
) -> list[list[Entry]]:
    """Each request (its keys, how many loop turns it starts late) runs concurrently."""

    async def one(keys: list[bytes], start_yields: int) -> list[Entry]:
        for _ in range(start_yields):
            await asyncio.sleep(0)
        return await fetcher.fetch(MODEL, None, misses(*keys))

    async def run_all() -> list[list[Entry]]:
        async with asyncio.timeout(5):
            return await asyncio.gather(*(one(keys, start) for keys, start in requests))

    return asyncio.run(run_all())


@settings(max_examples=50, deadline=None)
@given(
    requests=REQUESTS,
    inner_yields=st.integers(0, 3),
    window=st.sampled_from([0.0, 0.0005, 10.0]),
    max_items=st.integers(1, 4),
)
def test_composed_fetchers_hand_every_request_its_own_entries(
    requests: list[tuple[list[bytes], int]], inner_yields: int, window: float, max_items: int
) -> None:
    inner = RecordingFetcher()
    inner.yields = inner_yields
    fetcher = CoalescingFetcher(MicroBatchingFetcher(inner, window, max_items))
    results = run_concurrently(fetcher, requests)
    assert results == [[entry_for(key) for key in keys] for keys, _ in requests]
    assert all(len(set(call)) == len(call) for call in inner.calls)
    if window:
        assert all(len(call) <= max_items for call in inner.calls)


async def test_entries_a_request_joined_are_marked_joined() -> None:
    inner = RecordingFetcher(held=True)
    coalescer = CoalescingFetcher(inner)
    first = asyncio.create_task(coalescer.fetch(MODEL, None, [miss(b"k")]))
    await asyncio.sleep(0)
    second = asyncio.create_task(coalescer.fetch(MODEL, None, [miss(b"k")]))
    await asyncio.sleep(0)
    inner.release()
    (own,), (joined,) = await first, await second
    assert (own.joined, joined.joined) == (False, True)
