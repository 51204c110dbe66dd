"""The composition root: builds every concrete part from settings, wires routes and lifecycle."""

from __future__ import annotations

import logging

import redis.asyncio as aioredis
from aiohttp import web

from gateway.cache import Cache
from gateway.cache.memory import MemoryCache
from gateway.cache.redis import RedisCache
from gateway.catalog import Catalog
from gateway.fetch import ChunkedFetcher
from gateway.handlers import Handlers
from gateway.middleware import request_context
from gateway.service import EmbeddingService
from gateway.settings import CacheSettings, Settings
from gateway.tokens import Cl100k
from gateway.upstream import Provider
from gateway.upstream.openai import OpenAIProvider
from gateway.upstream.router import Router

log = logging.getLogger("gateway")

SERVICE = web.AppKey("service", EmbeddingService)


def build_cache(settings: CacheSettings) -> Cache:
    if settings.redis_url:
        client = aioredis.from_url(
            settings.redis_url,
            socket_timeout=settings.timeout,
            socket_connect_timeout=settings.timeout,
        )
        log.info("cache: redis (entries expire after %d s)", settings.ttl_seconds)
        return RedisCache(client, settings.ttl_seconds, settings.timeout)
    log.info(
        "cache: in-process memory, at most %d entries (set REDIS_URL to share a Redis cache)",
        settings.memory_max_entries,
    )
    return MemoryCache(settings.memory_max_entries, settings.ttl_seconds)


def build_app(settings: Settings) -> web.Application:
    catalog = Catalog.from_settings(settings.models)
    cache = build_cache(settings.cache)
    providers: dict[str, Provider] = {
        name: OpenAIProvider(name, spec) for name, spec in settings.providers.items()
    }
    fetcher = ChunkedFetcher(Router(providers))
    service = EmbeddingService(cache, fetcher, Cl100k(), settings.cache.key_prefix)
    app = web.Application(
        middlewares=[request_context], client_max_size=settings.server.max_body_bytes
    )
    app[SERVICE] = service
    app.add_routes(Handlers(service, catalog, cache).routes())

    async def lifecycle(app: web.Application):  # type: ignore[no-untyped-def]
        for provider in providers.values():
            await provider.start()
        yield
        await service.drain()
        for provider in providers.values():
            await provider.close()
        await cache.close()

    app.cleanup_ctx.append(lifecycle)
    return app
