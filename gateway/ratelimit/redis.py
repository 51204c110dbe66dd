"""Token buckets shared by every instance through one Redis.

All buckets of one request are checked and charged by a single EVALSHA of
`token_bucket.lua`. A failure raises `StoreUnavailable`; `gateway.guarded.GuardedLimiter` then
fails open to per-instance buckets: limits hold per instance instead of globally, and
requests flow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

import redis.asyncio
import redis.asyncio.cluster
from redis.exceptions import RedisError

from gateway.ratelimit.bucket import BucketRequest, Decision
from gateway.store import StoreUnavailable

SCRIPT_NAME = "token_bucket.lua"
MIN_TTL_MS = 1000


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
    ) -> None:
        self._script = client.register_script(load_script())
        self._prefix = prefix
        self._clock = clock

    async def acquire(self, requests: Sequence[BucketRequest]) -> list[Decision]:
        if not requests:
            return []
        now_ms = None if self._clock is None else round(self._clock() * 1000)
        keys = [self._prefix + r.key for r in requests]
        try:
            reply = await self._script(keys=keys, args=script_args(requests, now_ms))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {type(exc).__name__}") from exc
        return parse_reply(requests, reply)

    async def close(self) -> None:
        """Closes nothing it was given: the client belongs to whoever created it."""
