"""The composition root: builds every concrete part from settings, wires routes and lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import CollectorRegistry
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.accounting import Accountant
from gateway.auth import KeyRing
from gateway.background import Background
from gateway.breaker import CircuitBreaker
from gateway.cache import Cache
from gateway.cache.breaker import BreakerCache
from gateway.cache.fastread import FastReader
from gateway.cache.instrumented import InstrumentedCache
from gateway.cache.memory import MemoryCache
from gateway.cache.redis import RedisCache, RedisClient
from gateway.catalog import Catalog
from gateway.coalesce import CoalescingFetcher
from gateway.counting import OwnTokenizer, Tokenizers
from gateway.fairshare import BodyReader, InFlight, OffLoop, share_of
from gateway.fetch import ChunkedFetcher, Fetcher
from gateway.handlers import Handlers
from gateway.metrics import Metrics, Seed
from gateway.microbatch import MicroBatchingFetcher
from gateway.middleware import Admission, request_context
from gateway.quota import TenantLimits
from gateway.ratelimit import Limiter
from gateway.ratelimit.memory import MemoryLimiter
from gateway.ratelimit.redis import RedisLimiter
from gateway.redis_checks import warn_on_evicting_policy
from gateway.server import SERVER_SETTINGS
from gateway.service import EmbeddingService
from gateway.settings import (
    CacheSettings,
    FetchSettings,
    ProviderSettings,
    ServerSettings,
    Settings,
    UpstreamSettings,
)
from gateway.store import StoreGuard
from gateway.tokenmemo import TokenMemo
from gateway.tokens import Cl100k
from gateway.upstream import Provider
from gateway.upstream.local import LocalProvider
from gateway.upstream.openai import OpenAIProvider
from gateway.upstream.retry import RetryPolicy
from gateway.upstream.router import Router
from gateway.usage import MemoryUsage, RedisUsage, UsageBuffer, UsageStore

log = logging.getLogger("gateway")

BACKGROUND = web.AppKey("background", Background)


CLUSTER_SCHEMES = ("redis+cluster://", "rediss+cluster://")
REDIS_CONNECTIONS = 100  # per process, as redis-py's default


def redis_client(settings: CacheSettings) -> RedisClient | None:
    """None for the in-process default; `redis+cluster://host:port` names a Redis Cluster."""
    url = settings.redis_url
    if not url:
        return None
    # No client-side retries: a slow Redis must cost one short timeout, not ten.
    options = {
        "socket_timeout": settings.timeout,
        "socket_connect_timeout": settings.timeout,
        "retry": Retry(NoBackoff(), 0),
    }
    if url.startswith(CLUSTER_SCHEMES):
        return RedisCluster.from_url(url.replace("+cluster", "", 1), **options)
    # A burst of requests (a flood of connections) waits briefly for one of the pool's
    # connections instead of failing at once, which would open the breaker for everyone.
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=REDIS_CONNECTIONS, timeout=settings.timeout, **options
    )
    return aioredis.Redis.from_pool(pool)


def build_cache(settings: CacheSettings, client: RedisClient | None) -> Cache:
    if client is not None:
        log.info("cache: redis (entries expire after %d s)", settings.ttl_seconds)
        reader = None
        if settings.redis_url.startswith("redis://"):  # one plain-TCP Redis: the fast read path
            reader = FastReader(settings.redis_url, settings.timeout)
        return RedisCache(client, settings.ttl_seconds, settings.timeout, reader)
    log.info(
        "cache: in-process memory, at most %d entries (set REDIS_URL to share a Redis cache)",
        settings.memory_max_entries,
    )
    return MemoryCache(settings.memory_max_entries, settings.ttl_seconds)


@dataclass(frozen=True, slots=True)
class Guards:
    """One Redis, one policy: the request path (cache reads, limiter, usage reads) and the
    background writes (cache, usage) each share one breaker, so a stalled Redis costs a request
    at most one timeout per breaker window, and a Redis refusing writes stops only writes."""

    reads: StoreGuard
    writes: StoreGuard


def redis_guards(settings: CacheSettings) -> Guards:
    def guard(what: str) -> StoreGuard:
        return StoreGuard(
            what,
            timeout=settings.timeout,
            failures=(RedisError, OSError),
            failure_threshold=settings.breaker_failure_threshold,
            cooldown=settings.breaker_cooldown,
        )

    return Guards(guard("redis (request path)"), guard("redis (writes)"))


def build_limiter(settings: CacheSettings, client: RedisClient | None, guards: Guards) -> Limiter:
    if client is None:
        return MemoryLimiter()
    prefix = f"{settings.key_prefix}:rl:{{rl}}:"  # one hash tag: a limit's keys share a slot
    return RedisLimiter(client, prefix=prefix, fallback=MemoryLimiter(), guard=guards.reads)


def build_provider(name: str, settings: ProviderSettings) -> Provider:
    if settings.type == "local":
        return LocalProvider(name, settings)
    if settings.requires_api_key and not settings.api_key:
        log.warning("provider %s: no API key configured; its calls fail until one is set", name)
    return OpenAIProvider(name, settings)


def guarded(cache: Cache, guards: Guards) -> Cache:
    """A remote cache sits behind the Redis breakers, so a dead Redis costs nothing per
    request."""
    if isinstance(cache, MemoryCache):
        return cache
    return BreakerCache(cache, reads=guards.reads.breaker, writes=guards.writes.breaker)


def build_router(
    settings: UpstreamSettings, providers: Mapping[str, Provider], metrics: Metrics
) -> Router:
    policy = RetryPolicy(
        settings.max_attempts,
        settings.base_delay,
        settings.max_delay,
        settings.deadline,
        settings.attempt_timeout,
        settings.max_total_attempts,
    )
    threshold, cooldown = settings.breaker_failure_threshold, settings.breaker_cooldown
    return Router(
        providers,
        policy,
        breaker_factory=lambda _name: CircuitBreaker(threshold, cooldown),
        observe=metrics.upstream_call,
    )


def build_tokenizers(settings: Settings, providers: Mapping[str, Provider]) -> Tokenizers:
    """Models with ``tokenizer: local`` are counted by their in-process engine."""
    own = {}
    for name, spec in settings.models.items():
        local = [d for d in spec.deployments if isinstance(providers[d.provider], LocalProvider)]
        if spec.tokenizer != "local" or not local:
            continue
        provider = providers[local[0].provider]
        assert isinstance(provider, LocalProvider)
        own[name] = OwnTokenizer(provider.token_counts, local[0].model or name)
    return Tokenizers(own)


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


def build_usage(settings: CacheSettings, client: RedisClient | None, guards: Guards) -> UsageStore:
    if client is None:
        return MemoryUsage()
    return RedisUsage(
        client, settings.key_prefix, settings.timeout, reads=guards.reads, writes=guards.writes
    )


@dataclass(frozen=True, slots=True)
class Parts:
    """Every long-lived object of one gateway process."""

    settings: Settings
    catalog: Catalog
    metrics: Metrics
    cache: Cache
    limiter: Limiter
    providers: Mapping[str, Provider]
    background: Background
    service: EmbeddingService
    usage: UsageBuffer
    keys: KeyRing
    limits: TenantLimits
    offload: OffLoop
    client: RedisClient | None


def build_parts(settings: Settings) -> Parts:
    catalog = Catalog.from_settings(settings.models)
    metrics = Metrics(CollectorRegistry(), [model.name for model in catalog])
    client = redis_client(settings.cache)
    guards = redis_guards(settings.cache)
    cache = InstrumentedCache(guarded(build_cache(settings.cache, client), guards), metrics)
    limiter = build_limiter(settings.cache, client, guards)
    limits = TenantLimits(limiter, settings.limits, on_reject=metrics.rate_limited)
    offload = OffLoop(settings.server.offload_per_key)
    providers = {name: build_provider(name, spec) for name, spec in settings.providers.items()}
    background = Background()
    service = EmbeddingService(
        cache,
        build_fetcher(settings.fetch, build_router(settings.upstream, providers, metrics)),
        limits=limits,
        tokenizer=Cl100k(),
        key_prefix=settings.cache.key_prefix,
        background=background,
        memo=TokenMemo(settings.cache.token_memo_bytes),
        tokenizers=build_tokenizers(settings, providers),
        offload=offload,
    )
    usage = UsageBuffer(build_usage(settings.cache, client, guards))
    keys = KeyRing(settings.auth)
    announce_auth(keys, settings)
    return Parts(
        settings,
        catalog,
        metrics,
        cache,
        limiter,
        providers,
        background,
        service,
        usage,
        keys,
        limits,
        offload,
        client,
    )


def fair_share(server: ServerSettings) -> InFlight:
    limit = server.max_concurrent_requests
    return InFlight(
        per_key=share_of(limit, server.max_in_flight_per_key),
        per_ip=share_of(limit, server.max_in_flight_per_ip),
    )


def body_reader(server: ServerSettings) -> BodyReader:
    return BodyReader(
        max_bytes=server.max_body_bytes,
        min_rate=server.min_body_rate,
        grace=server.body_grace,
        timeout=server.body_timeout,
    )


def build_handlers(parts: Parts) -> Handlers:
    settings = parts.settings
    return Handlers(
        service=parts.service,
        catalog=parts.catalog,
        cache=parts.cache,
        keys=parts.keys,
        auth=settings.auth,
        accountant=Accountant(parts.metrics, parts.usage),
        usage_store=parts.usage,
        registry=parts.metrics,
        metrics_need_token=settings.metrics.require_internal_token,
        limits=parts.limits,
        in_flight=fair_share(settings.server),
        offload=parts.offload,
        body_reader=body_reader(settings.server),
    )


def lifecycle(parts: Parts) -> Callable[[web.Application], AsyncIterator[None]]:
    async def run(app: web.Application) -> AsyncIterator[None]:
        for provider in parts.providers.values():
            await provider.start()
        if parts.client is not None:
            await warn_on_evicting_policy(parts.client, parts.settings.cache.timeout * 4)
        flusher = asyncio.get_running_loop().create_task(parts.usage.run())
        yield
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher
        await parts.background.drain()
        await parts.usage.flush()
        for provider in parts.providers.values():
            await provider.close()
        await parts.limiter.close()
        await parts.cache.close()

    return run


def metrics_seed(settings: Settings, catalog: Catalog, app: web.Application) -> Seed:
    """The label sets known at start: routes, configured tenants, deployments."""
    routes = tuple(resource.canonical for resource in app.router.resources())
    tenants = [(key.name, key.team) for key in settings.auth.keys]
    tenants += [("internal", ""), ("anonymous", "")]
    deployments = {(d.provider, d.upstream_model) for m in catalog for d in m.deployments}
    return Seed(
        routes=routes,
        model_routes=tuple(r for r in routes if r.endswith("/embeddings")),
        tenants=tuple(tenants),
        deployments=tuple(sorted(deployments)),
    )


def build_app(settings: Settings) -> web.Application:
    parts = build_parts(settings)
    admission = Admission(settings.server.max_concurrent_requests)
    app = web.Application(
        middlewares=[request_context(parts.metrics, admission)],
        client_max_size=settings.server.max_body_bytes,
    )
    app[BACKGROUND] = parts.background
    app[SERVER_SETTINGS] = settings.server
    app.add_routes(build_handlers(parts).routes())
    parts.metrics.seed(metrics_seed(settings, parts.catalog, app))
    app.cleanup_ctx.append(lifecycle(parts))
    return app
