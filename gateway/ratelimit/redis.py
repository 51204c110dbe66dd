"""Token buckets shared by every instance through one Redis, with a per-instance fallback.

All buckets of one request are checked and charged by a single EVALSHA of
`token_bucket.lua`, under the store guard shared by every part that uses this Redis. When Redis
errors or is slow, or the guard's breaker is open, the limiter fails open to its own in-memory
buckets: limits then hold per instance instead of globally, and requests flow.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

import redis.asyncio
import redis.asyncio.cluster
from redis.exceptions import RedisError

from gateway.ratelimit.bucket import BucketRequest, Decision
from gateway.ratelimit.memory import MemoryLimiter
from gateway.store import StoreGuard

logger = logging.getLogger("gateway.ratelimit")

SCRIPT_NAME = "token_bucket.lua"
MIN_TTL_MS = 1000
WARN_EVERY = 10.0  # seconds between two "falling back" warnings (each with a count)


def load_script() -> str:
    return resources.files("gateway.ratelimit").joinpath(SCRIPT_NAME).read_text("utf-8")


def script_args(requests: Sequence[BucketRequest], now_ms: int | None) -> list[str | float]:
    """ARGV for the script; the TTL lets an idle bucket vanish once it would be full."""
    fill_ms = max(math.ceil(r.limit.burst / r.limit.rate * 1000) for r in requests)
    args: list[str | float] = ["" if now_ms is None else str(now_ms), max(MIN_TTL_MS, fill_ms)]
    for r in requests:
        args += [r.limit.rate, r.limit.burst, r.cost]
    return args


def parse_reply(requests: Sequence[BucketRequest], reply: Sequence[Any]) -> list[Decision]:
    return [_decision(r, row) for r, row in zip(requests, reply, strict=True)]


def _decision(request: BucketRequest, row: Sequence[Any]) -> Decision:
    allowed, remaining, retry_ms, reset_ms = row
    return Decision(
        allowed=bool(allowed),
        limit=request.limit.burst,
        remaining=float(remaining),
        retry_after=int(retry_ms) / 1000,
        reset_after=int(reset_ms) / 1000,
        exceeds_burst=request.cost > request.limit.burst,
    )


class RedisLimiter:
    """Keys are `prefix + request.key`; on Redis Cluster, put a {hash tag} in request keys
    that are acquired together so they share a slot."""

    name = "redis"

    def __init__(
        self,
        client: redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster,
        *,
        prefix: str = "gw:rl:",
        clock: Callable[[], float] | None = None,
        fallback: MemoryLimiter | None = None,
        timeout: float = 0.05,
        guard: StoreGuard | None = None,
    ) -> None:
        self._script = client.register_script(load_script())
        self._prefix = prefix
        self._clock = clock
        self._fallback = fallback if fallback is not None else MemoryLimiter()
        self._guard = guard or limiter_guard(timeout, clock)
        self.fallbacks = 0

    async def acquire(self, requests: Sequence[BucketRequest]) -> list[Decision]:
        if not requests:
            return []
        now_ms = None if self._clock is None else round(self._clock() * 1000)
        keys = [self._prefix + r.key for r in requests]
        args = script_args(requests, now_ms)
        return await self._guard.call_or(
            lambda: self._ask_redis(requests, keys, args), lambda: self._fall_back(requests)
        )

    async def close(self) -> None:
        """Closes nothing it was given: the client belongs to whoever created it."""
        await self._fallback.close()

    async def _ask_redis(
        self, requests: Sequence[BucketRequest], keys: list[str], args: list[str | float]
    ) -> list[Decision]:
        return parse_reply(requests, await self._script(keys=keys, args=args))

    async def _fall_back(self, requests: Sequence[BucketRequest]) -> list[Decision]:
        self.fallbacks += 1
        return await self._fallback.acquire(requests)


def limiter_guard(timeout: float, clock: Callable[[], float] | None) -> StoreGuard:
    """A guard of the limiter's own, for when it is not given the one shared with other parts."""
    return StoreGuard(
        "rate limiter (Redis; using per-instance buckets meanwhile)",
        timeout=timeout,
        failures=(RedisError, OSError),
        log_interval=WARN_EVERY,
        logger=logger,
        clock=clock or time.monotonic,
    )
