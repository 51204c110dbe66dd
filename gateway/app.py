"""The composition root: builds every concrete part from settings, wires routes and lifecycle."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from aiohttp import web
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gateway.auth import KeyRing
from gateway.cache import Cache
from gateway.cache.memory import MemoryCache
from gateway.cache.redis import RedisCache
from gateway.catalog import Catalog
from gateway.coalesce import CoalescingFetcher
from gateway.fetch import ChunkedFetcher, Fetcher
from gateway.handlers import Handlers
from gateway.microbatch import MicroBatchingFetcher
from gateway.middleware import request_context
from gateway.quota import TenantLimits
from gateway.ratelimit import Limiter, MemoryLimiter, RedisLimiter
from gateway.service import EmbeddingService
from gateway.settings import CacheSettings, FetchSettings, ProviderSettings, Settings
from gateway.tokens import Cl100k
from gateway.upstream import Provider
from gateway.upstream.openai import OpenAIProvider
from gateway.upstream.router import Router

log = logging.getLogger("gateway")

SERVICE = web.AppKey("service", EmbeddingService)
LIMITS = web.AppKey("limits", TenantLimits)


def redis_client(settings: CacheSettings) -> aioredis.Redis | None:
    if not settings.redis_url:
        return None
    # No client-side retries: a slow Redis must cost one short timeout, not ten.
    return aioredis.from_url(
        settings.redis_url,
        socket_timeout=settings.timeout,
        socket_connect_timeout=settings.timeout,
        retry=Retry(NoBackoff(), 0),
    )


def build_cache(settings: CacheSettings, client: aioredis.Redis | None) -> Cache:
    if client is not None:
        log.info("cache: redis (entries expire after %d s)", settings.ttl_seconds)
        return RedisCache(client, settings.ttl_seconds, settings.timeout)
    log.info(
        "cache: in-process memory, at most %d entries (set REDIS_URL to share a Redis cache)",
        settings.memory_max_entries,
    )
    return MemoryCache(settings.memory_max_entries, settings.ttl_seconds)


def build_limiter(settings: CacheSettings, client: aioredis.Redis | None) -> Limiter:
    if client is None:
        return MemoryLimiter()
    prefix = f"{settings.key_prefix}:rl:{{rl}}:"  # one hash tag: a limit's keys share a slot
    return RedisLimiter(client, prefix=prefix, fallback=MemoryLimiter(), timeout=settings.timeout)


def build_provider(name: str, settings: ProviderSettings) -> Provider:
    return OpenAIProvider(name, settings)


def build_fetcher(settings: FetchSettings, router: Router) -> Fetcher:
    fetcher: Fetcher = ChunkedFetcher(router)
    if settings.batch_window_ms > 0:
        window = settings.batch_window_ms / 1000
        fetcher = MicroBatchingFetcher(fetcher, window, settings.batch_max_inputs)
    return CoalescingFetcher(fetcher) if settings.coalesce else fetcher


def announce_auth(keys: KeyRing, settings: Settings) -> None:
    if keys.enabled:
        log.info(
            "auth: %d API keys; cache scope %s", len(settings.auth.keys), settings.auth.cache_scope
        )
    else:
        log.warning("auth: OFF (no API keys configured): every caller is accepted as 'anonymous'")


def build_app(settings: Settings) -> web.Application:
    catalog = Catalog.from_settings(settings.models)
    client = redis_client(settings.cache)
    cache = build_cache(settings.cache, client)
    limiter = build_limiter(settings.cache, client)
    providers = {name: build_provider(name, spec) for name, spec in settings.providers.items()}
    limits = TenantLimits(limiter, settings.limits)
    fetcher = build_fetcher(settings.fetch, Router(providers))
    service = EmbeddingService(cache, fetcher, limits, Cl100k(), settings.cache.key_prefix)
    keys = KeyRing(settings.auth)
    announce_auth(keys, settings)
    app = web.Application(
        middlewares=[request_context], client_max_size=settings.server.max_body_bytes
    )
    app[SERVICE] = service
    app[LIMITS] = limits
    app.add_routes(Handlers(service, catalog, cache, keys, settings.auth).routes())

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        for provider in providers.values():
            await provider.start()
        yield
        await service.drain()
        for provider in providers.values():
            await provider.close()
        await limiter.close()
        await cache.close()

    app.cleanup_ctx.append(lifecycle)
    return app
