"""One behaviour suite for every limiter backend, then what only Redis does."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.guarded import GuardedLimiter
from gateway.ratelimit import (
    BucketRequest,
    BucketState,
    Decision,
    Limit,
    Limiter,
    decide,
)
from gateway.ratelimit.bucket import ceil_ms
from gateway.ratelimit.memory import MemoryLimiter
from gateway.ratelimit.redis import RedisLimiter, load_script, parse_reply, script_args
from gateway.ratelimit.refusals import RefusalMemo
from gateway.redispipe import RedisPipe
from gateway.store import StoreGuard
from tests.support.backends import make_client
from tests.support.clock import FakeClock
from tests.support.redis_server import RedisServer, free_port

MS = 1e-3  # Redis reports durations in whole milliseconds, rounded up


def req(key: str, limit: Limit, cost: float = 1) -> BucketRequest:
    return BucketRequest(key, limit, cost)


def guarded(
    client: redis.asyncio.Redis,
    clock: FakeClock,
    timeout: float = 1.0,
    fallback: MemoryLimiter | None = None,
) -> GuardedLimiter:
    """A Redis limiter behind the store guard, falling back to per-instance buckets."""
    guard = StoreGuard(
        "rate limiter",
        timeout=timeout,
        failures=(redis.RedisError, OSError),
        logger=logging.getLogger("gateway.ratelimit"),
        clock=clock,
    )
    return GuardedLimiter(RedisLimiter(client, clock=clock), guard, fallback or MemoryLimiter())


async def take(limiter: Limiter, *requests: BucketRequest) -> Decision:
    decisions = await limiter.acquire(requests)
    assert len({d.allowed for d in decisions}) == 1, "one outcome per request"
    return decisions[0]


# --- the behaviour suite: memory and Redis alike -------------------------------------------


async def test_a_full_bucket_admits_its_burst_then_denies(limiter: Limiter) -> None:
    limit = Limit(rate=1, burst=3)
    outcomes = [(await take(limiter, req("ip", limit))).allowed for _ in range(4)]
    assert outcomes == [True, True, True, False]


async def test_tokens_come_back_at_the_rate_as_the_clock_advances(
    limiter: Limiter, clock: FakeClock
) -> None:
    limit = Limit(rate=2, burst=2)
    for _ in range(2):
        await take(limiter, req("ip", limit))
    assert not (await take(limiter, req("ip", limit))).allowed
    clock.advance(0.5)
    assert (await take(limiter, req("ip", limit))).allowed
    assert not (await take(limiter, req("ip", limit))).allowed


async def test_a_request_denied_by_one_bucket_charges_none(limiter: Limiter) -> None:
    per_second, per_minute = Limit(rate=10, burst=10), Limit.per_minute(100)
    assert (await take(limiter, req("rps", per_second), req("tpm", per_minute, 60))).allowed
    denied = await limiter.acquire([req("rps", per_second), req("tpm", per_minute, 60)])
    assert [d.allowed for d in denied] == [False, False]
    assert denied[0].remaining == 9  # the requests bucket paid only for the admitted call


async def test_retry_after_says_when_the_cost_will_fit(limiter: Limiter, clock: FakeClock) -> None:
    limit, start = Limit(rate=2, burst=4), clock.now
    await take(limiter, req("ip", limit, 4))
    denied = await take(limiter, req("ip", limit, 3))
    assert denied.retry_after == pytest.approx(1.5, abs=MS)
    clock.now = start + 1.499
    assert not (await take(limiter, req("ip", limit, 3))).allowed
    clock.now = start + 1.5
    assert (await take(limiter, req("ip", limit, 3))).allowed


async def test_a_cost_above_the_burst_is_never_admitted(limiter: Limiter) -> None:
    limit = Limit(rate=2, burst=10)
    await take(limiter, req("tpm", limit, 4))
    decision = await take(limiter, req("tpm", limit, 11))
    assert not decision.allowed
    assert decision.exceeds_burst
    assert decision.retry_after == pytest.approx(2, abs=MS)  # until the bucket is full


async def test_a_zero_cost_passes_an_empty_bucket(limiter: Limiter) -> None:
    limit = Limit(rate=1, burst=1)
    await take(limiter, req("ip", limit))
    assert (await take(limiter, req("ip", limit, 0))).allowed


async def test_an_admitted_request_reports_remaining_and_reset(limiter: Limiter) -> None:
    decision = await take(limiter, req("tpm", Limit(rate=2, burst=10), 4))
    assert (decision.allowed, decision.limit, decision.remaining) == (True, 10, 6)
    assert decision.retry_after == 0
    assert decision.reset_after == pytest.approx(2, abs=MS)


async def test_fractional_tokens_are_kept_exactly(limiter: Limiter) -> None:
    limit = Limit(rate=1, burst=1)
    await take(limiter, req("ip", limit, 0.25))
    assert (await take(limiter, req("ip", limit, 0.125))).remaining == 0.625


async def test_buckets_with_different_keys_are_independent(limiter: Limiter) -> None:
    limit = Limit(rate=1, burst=1)
    await take(limiter, req("a", limit))
    assert (await take(limiter, req("b", limit))).allowed


async def test_no_requests_yield_no_decisions(limiter: Limiter) -> None:
    assert await limiter.acquire([]) == []


# --- memory only ----------------------------------------------------------------------------


async def test_the_memory_limiter_forgets_its_oldest_bucket_when_full(clock: FakeClock) -> None:
    limiter, limit = MemoryLimiter(clock=clock, max_buckets=2), Limit(rate=1, burst=1)
    for key in ["a", "b", "a", "c"]:
        await take(limiter, req(key, limit))
    assert len(limiter) == 2
    assert (await take(limiter, req("b", limit))).allowed  # forgotten, so full again


# --- Redis only -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sync_redis(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


eighths = st.integers(min_value=-4, max_value=24).map(lambda n: n / 8)
halves = st.integers(min_value=0, max_value=12).map(lambda n: n / 2)
limits = st.builds(Limit, rate=st.integers(1, 8), burst=st.integers(1, 10))


def run_script(client: redis.Redis, requests: list[BucketRequest], now: float) -> list[Decision]:
    script = client.register_script(load_script())
    keys = [r.key for r in requests]
    return parse_reply(requests, script(keys=keys, args=script_args(requests, round(now * 1000))))


@settings(max_examples=40, deadline=None)
@given(st.lists(limits, min_size=1, max_size=3), st.lists(st.tuples(eighths, halves), max_size=25))
def test_the_lua_script_and_decide_agree_step_by_step(
    sync_redis: redis.Redis, bucket_limits: list[Limit], steps: list[tuple[float, float]]
) -> None:
    # Times in 1/8 s and costs in 1/2 are exact in binary, so both sides must match exactly.
    sync_redis.flushdb()
    states: list[BucketState | None] = [None] * len(bucket_limits)
    now = 1000.0
    for dt, cost in steps:
        now += dt
        requests = [req(f"k{i}", lim, cost * (i + 1)) for i, lim in enumerate(bucket_limits)]
        expected, new_states = decide(states, requests, now)
        states = list(new_states)
        for e, g in zip(expected, run_script(sync_redis, requests, now), strict=True):
            assert (g.allowed, g.remaining) == (e.allowed, e.remaining)
            assert g.retry_after == ceil_ms(e.retry_after) / 1000
            assert g.reset_after == ceil_ms(e.reset_after) / 1000


async def test_two_redis_limiters_on_one_redis_share_a_limit(
    redis_client: redis.asyncio.Redis, redis_server: RedisServer
) -> None:
    other = make_client(redis_server.url)
    first, second = RedisLimiter(redis_client), RedisLimiter(other)
    limit = Limit.per_minute(3)
    outcomes = [(await take(lim, req("team", limit))).allowed for lim in [first, second] * 2]
    await other.aclose()
    assert outcomes == [True, True, True, False]


async def test_without_an_injected_clock_redis_keeps_time(
    redis_client: redis.asyncio.Redis,
) -> None:
    limiter, limit = RedisLimiter(redis_client), Limit.per_minute(2)
    outcomes = [(await take(limiter, req("ip", limit))).allowed for _ in range(3)]
    assert outcomes == [True, True, False]


async def test_idle_buckets_expire_once_they_would_be_full(
    redis_client: redis.asyncio.Redis, clock: FakeClock
) -> None:
    limiter = RedisLimiter(redis_client, prefix="t:", clock=clock)
    await take(limiter, req("slow", Limit(rate=2, burst=10)))
    await take(limiter, req("fast", Limit(rate=1000, burst=1)))
    assert 4000 < await redis_client.pttl("t:slow") <= 5000
    assert 0 < await redis_client.pttl("t:fast") <= 1000  # never under a second


async def test_a_dead_redis_falls_back_to_memory_until_it_returns(
    own_redis: RedisServer, clock: FakeClock
) -> None:
    client = make_client(own_redis.url)
    fallback = MemoryLimiter(clock=clock)
    limiter = guarded(client, clock, fallback=fallback)
    limit = Limit(rate=1, burst=2)
    assert (await take(limiter, req("ip", limit))).allowed
    own_redis.kill()
    outcomes = [(await take(limiter, req("ip", limit))).allowed for _ in range(3)]
    assert outcomes == [True, True, False]  # the fallback's own bucket, not Redis's
    assert limiter.fallbacks == 3
    own_redis.restart()
    clock.advance(2.0)  # the guard's breaker cools down, then lets a probe through
    assert (await take(limiter, req("ip", limit))).remaining == 1  # a fresh, empty Redis
    assert limiter.fallbacks == 3
    assert await client.exists("gw:rl:ip") == 1
    await client.aclose()


async def test_a_redis_that_never_answers_counts_as_down(clock: FakeClock) -> None:
    writers: list[asyncio.StreamWriter] = []
    silent = await asyncio.start_server(lambda _, w: writers.append(w), "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    client = make_client(f"redis://127.0.0.1:{port}/0")
    limiter = guarded(client, clock, timeout=0.02)
    assert (await take(limiter, req("ip", Limit(rate=1, burst=1)))).allowed
    assert limiter.fallbacks == 1
    await client.aclose()
    for writer in writers:
        writer.close()
    silent.close()
    await silent.wait_closed()


async def test_the_fallback_warning_is_logged_at_most_every_ten_seconds(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    limiter, limit = guarded(client, clock), Limit(rate=100, burst=100)
    with caplog.at_level(logging.WARNING, logger="gateway.ratelimit"):
        for step in [0, 1, 8, 2, 1]:  # warns at 0 and 11
            clock.advance(step)
            await take(limiter, req("ip", limit))
    await client.aclose()
    assert limiter.fallbacks == 5
    assert len([r for r in caplog.records if r.name == "gateway.ratelimit"]) == 2


async def script_calls(client: redis.asyncio.Redis) -> int:
    stats = await client.info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))


async def test_a_flood_of_refused_requests_asks_redis_once_per_wait(
    redis_client: redis.asyncio.Redis, clock: FakeClock
) -> None:
    limiter = RefusalMemo(RedisLimiter(redis_client, clock=clock), clock=clock)
    limit = Limit(rate=1, burst=1)
    await take(limiter, req("flood", limit))
    await redis_client.config_resetstat()
    refusals = [await take(limiter, req("flood", limit)) for _ in range(20)]
    clock.advance(0.4)
    later = await take(limiter, req("flood", limit))
    assert await script_calls(redis_client) == 1 and limiter.answered == 20
    assert not any(d.allowed for d in refusals) and not later.allowed
    assert later.retry_after == pytest.approx(refusals[0].retry_after - 0.4, abs=MS)
    clock.advance(0.6)
    assert (await take(limiter, req("flood", limit))).allowed  # asked again once it could pay


async def test_requests_asking_at_once_share_one_round_trip(redis_server: RedisServer) -> None:
    client = make_client(redis_server.url)  # a pool of its own: its connections are counted
    before = int((await client.info("stats"))["total_connections_received"])
    limiter, limit = RedisLimiter(client), Limit(rate=1, burst=30)
    decisions = await asyncio.gather(*(take(limiter, req("burst", limit)) for _ in range(50)))
    opened = int((await client.info("stats"))["total_connections_received"]) - before
    await client.aclose()
    assert sum(d.allowed for d in decisions) == 30  # each script still charged on its own
    assert opened <= 2  # one for the batch, one for INFO: not one per request


async def test_a_batch_after_redis_lost_its_script_loads_it_again(
    redis_client: redis.asyncio.Redis,
) -> None:
    limiter, limit = RedisLimiter(redis_client), Limit(rate=1, burst=2)
    await take(limiter, req("ip", limit))
    await redis_client.script_flush()
    decisions = await asyncio.gather(*(take(limiter, req("ip", limit)) for _ in range(2)))
    assert [d.allowed for d in decisions] == [True, False]


async def test_a_caller_that_gave_up_before_the_batch_left_charges_nothing(
    redis_client: redis.asyncio.Redis,
) -> None:
    limiter, limit = RedisLimiter(redis_client), Limit(rate=1, burst=1)
    gave_up = asyncio.ensure_future(take(limiter, req("ip", limit)))
    waits = asyncio.ensure_future(take(limiter, req("ip", limit)))
    await asyncio.sleep(0)  # both queued for the same batch
    gave_up.cancel()
    assert (await waits).allowed
    assert gave_up.cancelled()


async def test_script_calls_on_the_pipe_share_one_connection(redis_server: RedisServer) -> None:
    client = make_client(redis_server.url)
    before = int((await client.info("stats"))["total_connections_received"])
    pipe = RedisPipe(redis_server.url, timeout=1.0)
    limiter, limit = RedisLimiter(client, pipe=pipe), Limit(rate=1, burst=30)
    decisions = await asyncio.gather(*(take(limiter, req("pipe", limit)) for _ in range(50)))
    opened = int((await client.info("stats"))["total_connections_received"]) - before
    await limiter.close()
    await client.aclose()
    assert sum(d.allowed for d in decisions) == 30
    assert opened <= 2  # the pipe's, and INFO's


async def test_the_pipe_loads_the_script_again_after_redis_lost_it(
    redis_client: redis.asyncio.Redis, redis_server: RedisServer
) -> None:
    pipe = RedisPipe(redis_server.url, timeout=1.0)
    limiter, limit = RedisLimiter(redis_client, pipe=pipe), Limit(rate=1, burst=2)
    await take(limiter, req("flushed", limit))
    await redis_client.script_flush()
    decisions = await asyncio.gather(*(take(limiter, req("flushed", limit)) for _ in range(2)))
    await limiter.close()
    assert [d.allowed for d in decisions] == [True, False]
