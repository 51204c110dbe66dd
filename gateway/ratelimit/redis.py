"""Token buckets shared by every instance through one Redis.

All buckets of one request are checked and charged by a single EVALSHA of
`token_bucket.lua`. A failure raises `StoreUnavailable`; `gateway.guarded.GuardedLimiter` then
fails open to per-instance buckets: limits hold per instance instead of globally, and
requests flow.

On one plain-TCP Redis every script call is written at once to one pipelined connection
(`gateway.redispipe`): a burst of a few hundred new connections shares that connection's round
trips instead of growing a pool by a hundred, and each call costs the event loop one wait, not
the several of redis-py's pipeline. Elsewhere (TLS) the calls made in the same turn of the
event loop go to Redis as one redis-py pipeline (`Batches`). Each script still runs
atomically on its own; only the round trip is shared. On Redis Cluster each request asks on
its own.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

import redis.asyncio
import redis.asyncio.cluster
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError

from gateway.ratelimit.bucket import BucketRequest, Decision
from gateway.redispipe import RedisPipe
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
        pipe: RedisPipe | None = None,
    ) -> None:
        self._client = client
        self._source = load_script()
        self._script = client.register_script(self._source)
        self._prefix = prefix
        self._clock = clock
        self._pipe = pipe  # closed with the limiter
        self._batches = None
        if pipe is None and not isinstance(client, RedisCluster):
            self._batches = Batches(client, self._script)

    async def acquire(self, requests: Sequence[BucketRequest]) -> list[Decision]:
        if not requests:
            return []
        now_ms = None if self._clock is None else round(self._clock() * 1000)
        keys = [self._prefix + r.key for r in requests]
        args = script_args(requests, now_ms)
        try:
            reply = await self._run(keys, args)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis: {type(exc).__name__}") from exc
        return parse_reply(requests, reply)

    async def _run(self, keys: list[str], args: list[str | float]) -> Any:
        if self._pipe is not None:
            return await self._on_pipe(self._pipe, keys, args)
        if self._batches is not None:
            return await self._batches.run(keys, args)
        return await self._script(keys=keys, args=args)

    async def _on_pipe(self, pipe: RedisPipe, keys: list[str], args: list[str | float]) -> Any:
        """EVALSHA; after Redis lost its scripts (a restart, SCRIPT FLUSH), loaded once more."""
        command = ("EVALSHA", self._script.sha, len(keys), *keys, *args)
        try:
            return await pipe.call(*command)
        except NoScriptError:
            await pipe.call("SCRIPT", "LOAD", self._source)
            return await pipe.call(*command)

    async def close(self) -> None:
        """Closes its pipe; not the client it was given, which belongs to whoever created it."""
        if self._pipe is not None:
            self._pipe.close()
        if self._batches is not None:
            await self._batches.close()


Call = tuple[list[str], list[str | float], "asyncio.Future[Any]"]


class Batches:
    """Script calls made in the same turn of the event loop, sent as one pipeline.

    A caller that stops waiting (its timeout) leaves the batch alone: the batch's answers are
    delivered to whoever still waits.
    """

    def __init__(self, client: redis.asyncio.Redis, script: AsyncScript) -> None:
        self._client = client
        self._script = script
        self._queued: list[Call] = []
        self._sending: set[asyncio.Task[None]] = set()

    async def run(self, keys: list[str], args: list[str | float]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queued.append((keys, args, future))
        if len(self._queued) == 1:  # the first of this turn sends the batch once it ends
            loop.call_soon(self._send_queued)
        return await future

    def _send_queued(self) -> None:
        batch = [call for call in self._queued if not call[2].done()]  # else: it gave up
        self._queued = []
        if not batch:
            return
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[Call]) -> None:
        unsent: Exception = RedisConnectionError("the batch was not sent")  # cancelled: closing
        replies: list[Any] = [unsent] * len(batch)
        try:
            replies = await self._pipeline(batch)
        except (RedisError, OSError) as exc:
            replies = [exc] * len(batch)
        finally:
            _deliver(batch, replies)

    async def _pipeline(self, batch: list[Call]) -> list[Any]:
        """EVALSHA each call; the first batch after Redis lost its scripts loads it, once."""
        replies = await self._evalsha(batch)
        if any(isinstance(reply, NoScriptError) for reply in replies):
            await self._client.script_load(self._script.script)
            replies = await self._evalsha(batch)
        return replies

    async def _evalsha(self, batch: list[Call]) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for keys, args, _ in batch:
            pipe.execute_command("EVALSHA", self._script.sha, len(keys), *keys, *args)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies

    async def close(self) -> None:
        for task in list(self._sending):
            task.cancel()
        await asyncio.gather(*self._sending, return_exceptions=True)


def _deliver(batch: list[Call], replies: list[Any]) -> None:
    for (_, _, future), reply in zip(batch, replies, strict=True):
        if future.done():  # its caller stopped waiting
            continue
        if isinstance(reply, Exception):
            future.set_exception(reply)
        else:
            future.set_result(reply)
