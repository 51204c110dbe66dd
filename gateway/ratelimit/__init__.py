"""Token-bucket rate limiting: pure arithmetic in `bucket`, one storage backend per module
(`memory`, `redis`; imported from there, so the arithmetic never pulls in redis)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from gateway.ratelimit.bucket import (
    BucketRequest,
    BucketState,
    Decision,
    Limit,
    decide,
    go_duration,
    refill,
)


class Limiter(Protocol):
    """Charges all buckets of one request, or none; one Decision per request, same order."""

    @property
    def name(self) -> str: ...

    async def acquire(self, requests: Sequence[BucketRequest]) -> list[Decision]: ...

    async def close(self) -> None: ...


__all__ = [
    "BucketRequest",
    "BucketState",
    "Decision",
    "Limit",
    "Limiter",
    "decide",
    "go_duration",
    "refill",
]
