"""Singleflight per cache key, in-process: a key already being fetched for one request is
awaited by the next instead of being sent upstream again.

Each fetch runs in a task owned by the coalescer, and waiters only wait for it (asyncio.wait),
so a waiter that is cancelled (its deadline, its client gone), even the one that started the
fetch, never cancels it for the others. A failure reaches every waiter as the same exception,
except a 4xx refusal of a fetch a request joined: that request re-sends its own misses alone, so
it never sees an error caused by (and naming) another request's input.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace

from gateway.catalog import Model
from gateway.codec import Entry
from gateway.fetch import Fetcher, Miss, refused_request


@dataclass(frozen=True, slots=True)
class _Slot:
    task: asyncio.Task[list[Entry]]
    index: int  # of the key's entry in the task's result


def _refused(task: asyncio.Task[list[Entry]]) -> bool:
    return not task.cancelled() and refused_request(task.exception() or Exception())


class CoalescingFetcher:
    def __init__(self, inner: Fetcher) -> None:
        self._inner = inner
        self._in_flight: dict[bytes, _Slot] = {}
        self._tasks: set[asyncio.Task[list[Entry]]] = set()
        self.coalesced = 0  # inputs that joined another request's fetch
        self.fetched = 0  # inputs sent to the inner fetcher

    async def fetch(
        self, model: Model, dimensions: int | None, misses: Sequence[Miss]
    ) -> list[Entry]:
        if not misses:
            return []
        slots = self._join(misses)
        joined = set(slots)
        fresh = list({m.key: m for m in misses if m.key not in slots}.values())
        if fresh:
            slots.update(self._start(model, dimensions, fresh))
        tasks = {slot.task for slot in slots.values()}
        await asyncio.wait(tasks)  # unlike gather, cancelling this waiter leaves the tasks be
        if any(_refused(slots[key].task) for key in joined):
            return await self._alone(model, dimensions, misses)
        results = {task: task.result() for task in tasks}
        entries = [results[slots[m.key].task][slots[m.key].index] for m in misses]
        return [
            replace(entry, joined=True) if miss.key in joined else entry
            for miss, entry in zip(misses, entries, strict=True)
        ]

    async def _alone(
        self, model: Model, dimensions: int | None, misses: Sequence[Miss]
    ) -> list[Entry]:
        """This request's misses on their own: the fetch it joined was refused with a 4xx
        that may concern (and quote) another request's input."""
        unique = list({m.key: m for m in misses}.values())
        self.fetched += len(unique)
        entries = await self._inner.fetch(model, dimensions, unique)
        by_key = {m.key: entry for m, entry in zip(unique, entries, strict=True)}
        return [by_key[m.key] for m in misses]

    def _join(self, misses: Sequence[Miss]) -> dict[bytes, _Slot]:
        joined = {m.key: self._in_flight[m.key] for m in misses if m.key in self._in_flight}
        self.coalesced += len(joined)
        return joined

    def _start(
        self, model: Model, dimensions: int | None, misses: list[Miss]
    ) -> dict[bytes, _Slot]:
        task = asyncio.get_running_loop().create_task(self._run(model, dimensions, misses))
        self._tasks.add(task)
        task.add_done_callback(self._settled)
        slots = {m.key: _Slot(task, index) for index, m in enumerate(misses)}
        self._in_flight.update(slots)
        self.fetched += len(misses)
        return slots

    async def _run(self, model: Model, dimensions: int | None, misses: list[Miss]) -> list[Entry]:
        try:
            return await self._inner.fetch(model, dimensions, misses)
        finally:
            # Before the task completes, so nobody can join a finished fetch; a later request
            # (after a failure too) starts a new one.
            for miss in misses:
                del self._in_flight[miss.key]

    def _settled(self, task: asyncio.Task[list[Entry]]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved here: every waiter may have been cancelled
