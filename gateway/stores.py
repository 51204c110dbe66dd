"""Every store (cache, limiter, usage, keys) built on the backend `settings.stores` picks for it,
each behind the guard of its backend: one pair of guards per Redis (the request path, and
background writes), one for the SQLite file. Part of the composition root."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.apikeys import KeyStore
from gateway.apikeys.memory import MemoryKeys
from gateway.apikeys.redis import RedisKeys
from gateway.apikeys.sqlite import SqliteKeys
from gateway.cache import Cache
from gateway.cache.memory import MemoryCache
from gateway.cache.redis import RedisCache, RedisClient
from gateway.cache.sqlite import SqliteCache
from gateway.embedded import BUSY_TIMEOUT_SECONDS, Database
from gateway.guarded import GuardedCache, GuardedKeys, GuardedLimiter, GuardedUsage
from gateway.ratelimit import Limiter
from gateway.ratelimit.memory import MemoryLimiter
from gateway.ratelimit.redis import RedisLimiter
from gateway.ratelimit.refusals import RefusalMemo
from gateway.redispipe import RedisPipe
from gateway.settings import CacheSettings, Settings, backend
from gateway.store import StoreGuard
from gateway.usage import UsageStore
from gateway.usage.memory import MemoryUsage
from gateway.usage.redis import RedisUsage
from gateway.usage.sqlite import SqliteUsage

log = logging.getLogger("gateway")

CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
REDIS_CONNECTIONS = 100  # per process, as redis-py's default
# Longer than SQLite's own busy timeout, so a locked file fails as an error (rolled back),
# never as a cancelled wait whose write still lands afterwards.
SQLITE_TIMEOUT = BUSY_TIMEOUT_SECONDS + 1
SQLITE_READ_TIMEOUT = 1.0  # the SQLite cache's reads


def _driver_info() -> dict[str, Any]:
    """redis-py from 7.2 reads its own version from the installed package's metadata for every
    new connection unless given it: a burst that grows the pool by a hundred connections spent
    a millisecond each on that, on the event loop. Read once here."""
    try:
        from redis import DriverInfo  # noqa: PLC0415 (absent before redis-py 7.2)
    except ImportError:
        return {}
    return {"driver_info": DriverInfo()}


def redis_client(settings: CacheSettings) -> RedisClient | None:
    """None without a URL; `redis+cluster://host:port` names a Redis Cluster."""
    url = settings.redis_url
    if not url:
        return None
    # No client-side retries: a slow Redis must cost one short timeout, not ten.
    options: dict[str, Any] = {
        "socket_timeout": settings.timeout,
        "socket_connect_timeout": settings.timeout,
        "retry": Retry(NoBackoff(), 0),
    } | _driver_info()
    if url.startswith(CLUSTER_SCHEMES):
        return RedisCluster.from_url(url.replace("+cluster", "", 1), **options)
    # A burst of requests (a flood of connections) waits briefly for one of the pool's
    # connections instead of failing at once, which would open the breaker for everyone.
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=REDIS_CONNECTIONS, timeout=settings.timeout, **options
    )
    return aioredis.Redis.from_pool(pool)


@dataclass(frozen=True, slots=True)
class Guards:
    """The request path (cache reads, limiter, usage reads, key polls) shares one breaker and
    background writes another, so a stalled backend costs a request at most one timeout per
    breaker window, and a backend refusing writes stops only writes."""

    reads: StoreGuard
    writes: StoreGuard


def guards(name: str, timeout: float, settings: CacheSettings) -> Guards:
    def guard(what: str) -> StoreGuard:
        return StoreGuard(
            f"{name} ({what})",
            timeout=timeout,
            failures=(RedisError, OSError),
            failure_threshold=settings.breaker_failure_threshold,
            cooldown=settings.breaker_cooldown,
        )

    return Guards(guard("request path"), guard("writes"))


@dataclass(frozen=True, slots=True)
class Backends:
    """The shared connections stores are built on, with their guards."""

    settings: Settings
    redis: RedisClient | None
    redis_guards: Guards
    database: Database
    sqlite_guards: Guards

    def need_redis(self) -> RedisClient:
        assert self.redis is not None, "settings checked that a Redis URL is set"
        return self.redis

    async def close(self) -> None:
        self.database.close()
        if self.redis is not None:
            await self.redis.aclose()


def build_backends(settings: Settings) -> Backends:
    cache = settings.cache
    return Backends(
        settings,
        redis_client(cache),
        guards("redis", cache.timeout, cache),
        Database(settings.stores.data_dir),
        guards("sqlite", SQLITE_TIMEOUT, cache),
    )


def build_cache(backends: Backends, on_error: Callable[[str], None]) -> Cache:
    chosen = backend(backends.settings, "cache")
    if chosen == "redis":
        return _redis_cache(backends, on_error)
    if chosen == "sqlite":
        return _sqlite_cache(backends, on_error)
    settings = backends.settings.cache
    log.info("cache: in-process memory, at most %d entries", settings.memory_max_entries)
    return MemoryCache(settings.memory_max_entries, settings.ttl_seconds)


def _redis_cache(backends: Backends, on_error: Callable[[str], None]) -> Cache:
    settings = backends.settings.cache
    log.info("cache: redis (entries expire after %d s)", settings.ttl_seconds)
    cache = RedisCache(
        backends.need_redis(),
        settings.ttl_seconds,
        settings.timeout,
        _pipe(settings),
        settings.key_prefix,
    )
    guard = backends.redis_guards
    return GuardedCache(cache, guard.reads, guard.writes, on_error)


def _sqlite_cache(backends: Backends, on_error: Callable[[str], None]) -> Cache:
    """Its own file (cache.db) and guards: a busy cache never holds up keys or usage. Reads
    get the cache's short timeout; writes may wait out another worker's write."""
    settings = backends.settings.cache
    directory = backends.settings.stores.data_dir
    log.info("cache: SQLite under %s, at most %d bytes", directory, settings.max_bytes)
    # A thread hop on a busy machine can outlast a Redis-sized timeout; a timeout opens the
    # breaker, so the local file gets a second before a read counts as failed.
    read_timeout = max(settings.timeout, SQLITE_READ_TIMEOUT)
    cache = SqliteCache(
        directory,
        max_bytes=settings.max_bytes,
        ttl_seconds=settings.ttl_seconds,
        hot_entries=settings.hot_entries,
        timeout=read_timeout,
    )
    reads = guards("sqlite cache", read_timeout, settings).reads
    writes = guards("sqlite cache", SQLITE_TIMEOUT, settings).writes
    return GuardedCache(cache, reads, writes, on_error)


def _pipe(settings: CacheSettings) -> RedisPipe | None:
    """One plain-TCP Redis: a pipelined connection for the request path's commands."""
    if settings.redis_url.startswith("redis://"):
        return RedisPipe(settings.redis_url, settings.timeout)
    return None


def build_limiter(backends: Backends) -> Limiter:
    if backend(backends.settings, "limiter") != "redis":
        return MemoryLimiter()
    prefix = f"{backends.settings.cache.key_prefix}:rl:{{rl}}:"  # one hash tag: one slot
    limiter = RedisLimiter(
        backends.need_redis(), prefix=prefix, pipe=_pipe(backends.settings.cache)
    )
    guarded = GuardedLimiter(limiter, backends.redis_guards.reads, fallback=MemoryLimiter())
    return RefusalMemo(guarded)  # a flood of refused requests asks Redis once per wait


def build_usage(backends: Backends) -> UsageStore:
    chosen = backend(backends.settings, "usage")
    log.info("usage: %s", chosen)
    if chosen == "sqlite":
        sqlite = backends.sqlite_guards
        return GuardedUsage(SqliteUsage(backends.database), sqlite.reads, sqlite.writes)
    if chosen == "redis":
        store = RedisUsage(backends.need_redis(), backends.settings.cache.key_prefix)
        return GuardedUsage(store, backends.redis_guards.reads, backends.redis_guards.writes)
    return MemoryUsage()


def build_key_store(backends: Backends) -> KeyStore:
    chosen = backend(backends.settings, "keys")
    log.info("runtime API keys: %s", chosen)
    if chosen == "sqlite":
        return GuardedKeys(SqliteKeys(backends.database), backends.sqlite_guards.writes)
    if chosen == "redis":
        store = RedisKeys(backends.need_redis(), backends.settings.cache.key_prefix)
        return GuardedKeys(store, backends.redis_guards.reads)
    return MemoryKeys()
