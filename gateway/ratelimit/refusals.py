"""Refusals remembered in front of a shared limiter, so a flood of refused requests costs no
round trip to Redis each.

When a request's buckets refuse it, the same buckets refuse the same request again until the
refusing bucket's `retry_after` has passed: a bucket refills at a fixed rate, and a refused
request charges nothing, so nothing another instance does can make it pay sooner. Until then a
repeat of that request (the same bucket keys, limits and costs) is answered here, with the
remembered decisions aged by the time since. Bounded by entries, oldest first out.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

from gateway.ratelimit import Limiter
from gateway.ratelimit.bucket import BucketRequest, Decision

MAX_ENTRIES = 10_000


class RefusalMemo:
    def __init__(
        self,
        inner: Limiter,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self._inner = inner
        self._clock = clock
        self._max_entries = max_entries
        self._refused: dict[tuple[BucketRequest, ...], tuple[float, list[Decision]]] = {}
        self.answered = 0  # refusals answered here, without asking the limiter

    @property
    def name(self) -> str:
        return self._inner.name

    async def acquire(self, requests: Sequence[BucketRequest]) -> list[Decision]:
        key, now = tuple(requests), self._clock()
        remembered = self._refused.get(key)
        if remembered is not None:
            if now < remembered[0] + _wait(remembered[1]):
                self.answered += 1
                return aged(remembered[1], now - remembered[0])
            del self._refused[key]
        decisions = await self._inner.acquire(requests)
        if decisions and not decisions[0].allowed and _wait(decisions) > 0:
            self._remember(key, now, decisions)
        return decisions

    def _remember(
        self, key: tuple[BucketRequest, ...], now: float, decisions: list[Decision]
    ) -> None:
        if len(self._refused) >= self._max_entries:
            del self._refused[next(iter(self._refused))]
        self._refused[key] = (now, decisions)

    async def close(self) -> None:
        await self._inner.close()


def _wait(decisions: Sequence[Decision]) -> float:
    """How long the request stays refused: until every refusing bucket could pay."""
    return max(d.retry_after for d in decisions)


def aged(decisions: Sequence[Decision], elapsed: float) -> list[Decision]:
    """The decisions as they will read `elapsed` seconds later."""
    return [
        dataclasses.replace(
            d,
            retry_after=max(0.0, d.retry_after - elapsed),
            reset_after=max(0.0, d.reset_after - elapsed),
        )
        for d in decisions
    ]
