"""Group commit for upstream calls, per (model name, dimensions, cache scope).

While no inner call for a batch key is in flight, a request's misses go upstream at once: a
lone request waits for nothing. While one is in flight, misses of concurrent requests gather
in a pending batch, deduplicated by key, which is dispatched when an in-flight call completes,
when `window` seconds have passed since its first miss, or as soon as it holds `max_items`
inputs, whichever comes first. Every request gets back exactly its own entries, in its order.

Batches never cross a cache scope. A batch of several requests that the upstream refuses with
a 4xx is resolved per request: each re-sends its own misses alone, so it gets the error its own
inputs cause (or its vectors), never an error that names another caller's input.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from gateway.catalog import Model
from gateway.codec import Entry
from gateway.fetch import Fetcher, Miss, refused_request


class Timer(Protocol):
    def cancel(self) -> None: ...


Schedule = Callable[[float, Callable[[], None]], Timer]
BatchKey = tuple[str, int | None, str]  # model name, dimensions, cache scope


def _retrieve(future: asyncio.Future[list[Entry]]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved here: every request may have been cancelled


def _refused_with_others(batch: _Batch) -> bool:
    """The batch held other requests' misses too and the upstream refused it with a 4xx."""
    result = batch.result
    if result.cancelled() or batch.requests < 2:
        return False
    error = result.exception()
    return error is not None and refused_request(error)


def call_later(delay: float, callback: Callable[[], None]) -> Timer:
    return asyncio.get_running_loop().call_later(delay, callback)


@dataclass(slots=True)
class _Batch:
    model: Model
    result: asyncio.Future[list[Entry]]
    misses: list[Miss] = field(default_factory=list)
    index: dict[bytes, int] = field(default_factory=dict)
    timer: Timer | None = None
    requests: int = 0  # how many requests put misses in it


@dataclass(slots=True)
class _Lane:
    """The state of one batch key: calls in flight and the batch gathering behind them."""

    key: BatchKey
    in_flight: int = 0
    pending: _Batch | None = None


class MicroBatchingFetcher:
    def __init__(
        self,
        inner: Fetcher,
        window: float = 0.002,
        max_items: int = 2048,
        schedule: Schedule = call_later,
    ) -> None:
        if window < 0 or max_items < 1:
            raise ValueError("window must be >= 0 and max_items >= 1")
        self._inner = inner
        self._window = window
        self._max_items = max_items
        self._schedule = schedule
        self._lanes: dict[BatchKey, _Lane] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0  # inner calls made
        self.batched_inputs = 0  # inputs sent in them
        self.deduplicated = 0  # inputs that joined an identical key in a pending batch

    async def fetch(
        self, model: Model, dimensions: int | None, misses: Sequence[Miss]
    ) -> list[Entry]:
        if not misses:
            return []
        if self._window == 0:
            self._count(len(misses))
            return await self._inner.fetch(model, dimensions, misses)
        lane = self._lane((model.name, dimensions, misses[0].scope))
        idle = lane.in_flight == 0
        slots = self._join(lane, model, misses)
        if idle and lane.pending is not None:
            self._dispatch(lane, lane.pending)
        batches = {batch.result: batch for batch, _ in slots}
        await asyncio.wait(batches)  # unlike gather, cancelling this request leaves them be
        if any(_refused_with_others(batch) for batch in batches.values()):
            self._count(len(misses))
            return await self._inner.fetch(model, dimensions, misses)
        results = {result: result.result() for result in batches}
        return [results[batch.result][index] for batch, index in slots]

    def _join(self, lane: _Lane, model: Model, misses: Sequence[Miss]) -> list[tuple[_Batch, int]]:
        slots = [self._add(lane, model, miss) for miss in misses]
        for batch in {id(batch): batch for batch, _ in slots}.values():
            batch.requests += 1
        return slots

    def _lane(self, key: BatchKey) -> _Lane:
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane(key)
        return lane

    def _add(self, lane: _Lane, model: Model, miss: Miss) -> tuple[_Batch, int]:
        batch = lane.pending or self._open(lane, model)
        index = batch.index.get(miss.key)
        if index is not None:
            self.deduplicated += 1
            return batch, index
        index = batch.index[miss.key] = len(batch.misses)
        batch.misses.append(miss)
        if len(batch.misses) >= self._max_items:
            self._dispatch(lane, batch)
        return batch, index

    def _open(self, lane: _Lane, model: Model) -> _Batch:
        batch = _Batch(model, asyncio.get_running_loop().create_future())
        batch.result.add_done_callback(_retrieve)
        lane.pending = batch
        if lane.in_flight:
            batch.timer = self._schedule(self._window, lambda: self._expire(lane, batch))
        return batch

    def _expire(self, lane: _Lane, batch: _Batch) -> None:
        if lane.pending is batch:
            self._dispatch(lane, batch)

    def _dispatch(self, lane: _Lane, batch: _Batch) -> None:
        lane.pending = None
        if batch.timer is not None:
            batch.timer.cancel()
        lane.in_flight += 1
        self._count(len(batch.misses))
        task = asyncio.get_running_loop().create_task(self._run(lane, batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, lane: _Lane, batch: _Batch) -> None:
        try:
            entries = await self._inner.fetch(batch.model, lane.key[1], batch.misses)
        except asyncio.CancelledError:
            batch.result.cancel()
            raise
        except Exception as error:  # every waiter of the batch sees the inner failure
            batch.result.set_exception(error)
        else:
            batch.result.set_result(entries)
        finally:
            lane.in_flight -= 1
            if lane.pending is not None:
                self._dispatch(lane, lane.pending)
            elif lane.in_flight == 0:
                self._lanes.pop(lane.key, None)

    def _count(self, inputs: int) -> None:
        self.batches += 1
        self.batched_inputs += inputs
