"""MicroBatchingFetcher: group commit of concurrent requests' misses per (model, dimensions)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.codec import Entry
from gateway.errors import UpstreamError
from gateway.microbatch import MicroBatchingFetcher
from tests.test_coalesce import (
    MODEL,
    REQUESTS,
    RecordingFetcher,
    entry_for,
    misses,
    run_concurrently,
    settle,
)


class ManualTimer:
    def __init__(self, delay: float, callback: Callable[[], None]) -> None:
        self.delay = delay
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualTimers:
    """The injected schedule: timers fire only when a test says so."""

    def __init__(self) -> None:
        self.timers: list[ManualTimer] = []

    def __call__(self, delay: float, callback: Callable[[], None]) -> ManualTimer:
        self.timers.append(ManualTimer(delay, callback))
        return self.timers[-1]

    def armed(self) -> list[ManualTimer]:
        return [timer for timer in self.timers if not timer.cancelled]

    def fire(self) -> None:
        for timer in self.armed():
            timer.cancel()
            timer.callback()


def batcher(
    inner: RecordingFetcher, window: float = 0.002, max_items: int = 2048
) -> tuple[MicroBatchingFetcher, ManualTimers]:
    timers = ManualTimers()
    return MicroBatchingFetcher(inner, window, max_items, schedule=timers), timers


def start(fetcher: MicroBatchingFetcher, *keys: bytes) -> asyncio.Task[list[Entry]]:
    return asyncio.create_task(fetcher.fetch(MODEL, None, misses(*keys)))


def entries(*keys: bytes) -> list[Entry]:
    return [entry_for(key) for key in keys]


async def results(*requests: asyncio.Task[list[Entry]]) -> list[list[Entry]]:
    return list(await asyncio.gather(*requests))


async def test_a_lone_request_is_dispatched_at_once() -> None:
    inner = RecordingFetcher()
    fetcher = MicroBatchingFetcher(inner, window=10.0)
    async with asyncio.timeout(1):
        assert await fetcher.fetch(MODEL, None, misses(b"a", b"b")) == entries(b"a", b"b")
    assert inner.calls == [[b"a", b"b"]]


async def test_concurrent_single_input_requests_share_a_handful_of_inner_calls() -> None:
    inner = RecordingFetcher()
    inner.delay = 0.005
    fetcher = MicroBatchingFetcher(inner, window=0.002)
    keys = [f"key-{i}".encode() for i in range(20)]
    results = await asyncio.gather(*(fetcher.fetch(MODEL, None, misses(k)) for k in keys))
    assert results == [entries(key) for key in keys]
    assert len(inner.calls) <= 3
    assert (fetcher.batches, fetcher.batched_inputs) == (len(inner.calls), 20)


async def test_misses_arriving_during_a_call_go_together_when_it_completes() -> None:
    inner = RecordingFetcher(held=True)
    fetcher, _ = batcher(inner)
    first = start(fetcher, b"a")
    await settle()
    second, third = start(fetcher, b"b"), start(fetcher, b"c")
    await settle()
    assert inner.calls == [[b"a"]]
    inner.release()
    assert await results(first, second, third) == [
        entries(b"a"),
        entries(b"b"),
        entries(b"c"),
    ]
    assert inner.calls == [[b"a"], [b"b", b"c"]]


async def test_a_pending_batch_waits_at_most_the_window() -> None:
    inner = RecordingFetcher(held=True)
    fetcher, timers = batcher(inner, window=0.002)
    first = start(fetcher, b"a")
    await settle()
    second = start(fetcher, b"b")
    await settle()
    assert [timer.delay for timer in timers.armed()] == [0.002]
    timers.fire()
    await settle()
    assert inner.calls == [[b"a"], [b"b"]]
    inner.release()
    assert await results(first, second) == [entries(b"a"), entries(b"b")]


async def test_a_pending_batch_goes_at_once_when_it_reaches_max_items() -> None:
    inner = RecordingFetcher(held=True)
    fetcher, timers = batcher(inner, max_items=3)
    first = start(fetcher, b"a")
    await settle()
    second, third = start(fetcher, b"b", b"c"), start(fetcher, b"d", b"e")
    await settle()
    assert inner.calls == [[b"a"], [b"b", b"c", b"d"]]
    inner.release()
    assert await results(first, second, third) == [
        entries(b"a"),
        entries(b"b", b"c"),
        entries(b"d", b"e"),
    ]
    assert inner.calls[2:] == [[b"e"]]
    assert timers.armed() == []


async def test_a_lone_request_over_max_items_is_split_and_sent_at_once() -> None:
    inner = RecordingFetcher(held=True)
    fetcher, _ = batcher(inner, max_items=2)
    request = start(fetcher, b"a", b"b", b"c", b"d", b"e")
    await settle()
    assert inner.calls == [[b"a", b"b"], [b"c", b"d"], [b"e"]]
    inner.release()
    assert await request == entries(b"a", b"b", b"c", b"d", b"e")


async def test_each_request_gets_its_own_entries_in_its_own_order() -> None:
    inner = RecordingFetcher(held=True)
    fetcher, _ = batcher(inner)
    first = start(fetcher, b"x")
    await settle()
    second, third = start(fetcher, b"c", b"a"), start(fetcher, b"a", b"d", b"c")
    await settle()
    inner.release()
    await first
    assert await second == entries(b"c", b"a")
    assert await third == entries(b"a", b"d", b"c")


async def test_identical_keys_in_a_pending_batch_are_sent_once() -> None:
    inner = RecordingFetcher(held=True)
    fetcher, _ = batcher(inner)
    first = start(fetcher, b"x")
    await settle()
    second, third = start(fetcher, b"a", b"k"), start(fetcher, b"k")
    await settle()
    inner.release()
    assert await results(first, second, third) == [
        entries(b"x"),
        entries(b"a", b"k"),
        entries(b"k"),
    ]
    assert inner.calls == [[b"x"], [b"a", b"k"]]
    assert fetcher.deduplicated == 1


async def test_a_failure_reaches_every_request_in_the_batch() -> None:
    inner = RecordingFetcher(held=True)
    fetcher, _ = batcher(inner)
    first = start(fetcher, b"x")
    await settle()
    inner.error = UpstreamError("upstream down")
    second, third = start(fetcher, b"a"), start(fetcher, b"b")
    await settle()
    inner.release()
    outcomes = await asyncio.gather(first, second, third, return_exceptions=True)
    assert all(outcome is inner.error for outcome in outcomes)


async def test_a_cancelled_request_does_not_cancel_its_batch() -> None:
    inner = RecordingFetcher(held=True)
    fetcher, _ = batcher(inner)
    first = start(fetcher, b"x")
    await settle()
    second, third = start(fetcher, b"a"), start(fetcher, b"b")
    await settle()
    first.cancel()
    second.cancel()
    await settle()
    inner.release()
    assert await third == entries(b"b")
    assert inner.calls == [[b"x"], [b"a", b"b"]]
    assert inner.cancelled == 0


async def test_different_dimensions_are_never_batched_together() -> None:
    inner = RecordingFetcher(held=True)
    fetcher, _ = batcher(inner)
    native = start(fetcher, b"a")
    reduced = asyncio.create_task(fetcher.fetch(MODEL, 2, misses(b"b")))
    await settle()
    assert inner.calls == [[b"a"], [b"b"]]
    inner.release()
    await asyncio.gather(native, reduced)


async def test_a_zero_window_passes_every_request_straight_through() -> None:
    inner = RecordingFetcher(held=True)
    fetcher, timers = batcher(inner, window=0)
    requests = [start(fetcher, key) for key in (b"a", b"b", b"c")]
    await settle()
    assert inner.calls == [[b"a"], [b"b"], [b"c"]]
    inner.release()
    assert await results(*requests) == [entries(b"a"), entries(b"b"), entries(b"c")]
    assert timers.timers == []


def test_a_negative_window_is_rejected() -> None:
    with pytest.raises(ValueError):
        MicroBatchingFetcher(RecordingFetcher(), window=-1)


async def test_a_failed_batch_nobody_waits_for_any_more_is_still_retrieved() -> None:
    reported: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: reported.append(context))
    inner = RecordingFetcher(held=True)
    inner.error = UpstreamError("upstream down")
    fetcher, _ = batcher(inner)
    request = start(fetcher, b"a")
    await settle()
    request.cancel()
    inner.release()
    await settle()
    gc.collect()
    assert reported == []
    assert inner.calls == [[b"a"]]


@settings(max_examples=50, deadline=None)
@given(
    requests=REQUESTS,
    inner_yields=st.integers(0, 3),
    window=st.sampled_from([0.0005, 10.0]),
    max_items=st.integers(1, 4),
)
def test_every_request_gets_its_own_entries_from_shared_batches(
    requests: list[tuple[list[bytes], int]], inner_yields: int, window: float, max_items: int
) -> None:
    inner = RecordingFetcher()
    inner.yields = inner_yields
    fetcher = MicroBatchingFetcher(inner, window, max_items)
    results = run_concurrently(fetcher, requests)
    assert results == [[entry_for(key) for key in keys] for keys, _ in requests]
    assert all(len(set(call)) == len(call) <= max_items for call in inner.calls)
