"""Token buckets shared by every instance through one Redis, with a per-instance fallback.

All buckets of one request are checked and charged by a single EVALSHA of
`token_bucket.lua`. When Redis errors or is slow, the limiter fails open to its own
in-memory buckets: limits then hold per instance instead of globally, and requests flow.
"""

from __future__ import annotations

import asyncio
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

logger = logging.getLogger("gateway.ratelimit")

SCRIPT_NAME = "token_bucket.lua"
MIN_TTL_MS = 1000
WARN_EVERY = 10.0  # seconds between two "falling back" warnings


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
    ) -> None:
        self._script = client.register_script(load_script())
        self._prefix = prefix
        self._clock = clock
        self._fallback = fallback if fallback is not None else MemoryLimiter()
        self._timeout = timeout
        self._warned_at: float | None = None
        self.fallbacks = 0

    async def acquire(self, requests: Sequence[BucketRequest]) -> list[Decision]:
        if not requests:
            return []
        now_ms = None if self._clock is None else round(self._clock() * 1000)
        keys = [self._prefix + r.key for r in requests]
        try:
            async with asyncio.timeout(self._timeout):
                reply = await self._script(keys=keys, args=script_args(requests, now_ms))
        except (RedisError, OSError, TimeoutError) as exc:
            return await self._fall_back(requests, exc)
        return parse_reply(requests, reply)

    async def close(self) -> None:
        """Closes nothing it was given: the client belongs to whoever created it."""
        await self._fallback.close()

    async def _fall_back(
        self, requests: Sequence[BucketRequest], exc: BaseException
    ) -> list[Decision]:
        self.fallbacks += 1
        now = (self._clock or time.monotonic)()
        if self._warned_at is None or now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            logger.warning(
                "rate limiter: Redis unavailable (%s); using per-instance buckets",
                type(exc).__name__,
            )
        return await self._fallback.acquire(requests)
