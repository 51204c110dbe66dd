"""Token buckets in this process's memory: for one instance, tests, and Redis outages."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from gateway.ratelimit.bucket import BucketRequest, BucketState, Decision, decide


class MemoryLimiter:
    """Buckets in a bounded dict; the least recently used is dropped (it refills to full)."""

    name = "memory"

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, max_buckets: int = 100_000
    ) -> None:
        if max_buckets < 1:
            raise ValueError("max_buckets must be at least 1")
        self._clock = clock
        self._max_buckets = max_buckets
        self._buckets: dict[str, BucketState] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    async def acquire(self, requests: Sequence[BucketRequest]) -> list[Decision]:
        states = [self._buckets.get(r.key) for r in requests]
        decisions, updated = decide(states, requests, self._clock())
        for request, state in zip(requests, updated, strict=True):
            self._store(request.key, state)
        return decisions

    async def close(self) -> None:
        return None

    def _store(self, key: str, state: BucketState) -> None:
        # Re-inserting moves the key to the end, so the dict's first key is the oldest.
        self._buckets.pop(key, None)
        self._buckets[key] = state
        while len(self._buckets) > self._max_buckets:
            del self._buckets[next(iter(self._buckets))]
