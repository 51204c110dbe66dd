"""The composition root: builds every concrete part from settings, wires routes and lifecycle."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CollectorRegistry

from gateway.accesslog import AccessLog
from gateway.accounting import Accountant
from gateway.admin.cache import CacheRoutes
from gateway.admin.keys import KeyRoutes
from gateway.admin.projects import ProjectRoutes
from gateway.admin.spend import SpendRoutes
from gateway.apikeys.admin import KeyAdmin
from gateway.apikeys.directory import KeyDirectory
from gateway.auth import KeyRing, parse_networks
from gateway.background import Background, stop_task
from gateway.breaker import CircuitBreaker
from gateway.cache import Cache
from gateway.cache.instrumented import InstrumentedCache
from gateway.catalog import Catalog
from gateway.coalesce import CoalescingFetcher
from gateway.counting import OwnTokenizer, Tokenizers
from gateway.dashboard import Dashboard
from gateway.decoded import DecodedEntries
from gateway.fairshare import BodyReader, InFlight, OffLoop, share_of
from gateway.fetch import ChunkedFetcher, Fetcher
from gateway.handlers import Handlers
from gateway.heap import startup_objects_frozen
from gateway.metrics import Metrics, Seed
from gateway.microbatch import MicroBatchingFetcher
from gateway.middleware import Admission, request_context
from gateway.pacing import ClientAddresses, StartPacer
from gateway.quota import TenantLimits
from gateway.ratelimit import Limiter
from gateway.ratelimit.repeats import HeldAnswers
from gateway.redis_checks import warn_on_evicting_policy
from gateway.server import SERVER_SETTINGS
from gateway.service import EmbeddingService
from gateway.settings import (
    FetchSettings,
    ProviderSettings,
    ServerSettings,
    Settings,
    UpstreamSettings,
    backend,
)
from gateway.spending import Spending, build_spending
from gateway.stores import (
    Backends,
    build_backends,
    build_cache,
    build_key_store,
    build_limiter,
    build_usage,
)
from gateway.tokenmemo import TokenMemo
from gateway.tokens import Cl100k
from gateway.upstream import Provider
from gateway.upstream.local import LocalProvider
from gateway.upstream.openai import OpenAIProvider
from gateway.upstream.retry import RetryPolicy
from gateway.upstream.router import Router
from gateway.usage.buffer import UsageBuffer

log = logging.getLogger("gateway")

BACKGROUND = web.AppKey("background", Background)
ACCESS_LOG = web.AppKey("access_log", AccessLog)
KEY_DIRECTORY = web.AppKey("key_directory", KeyDirectory)


def build_provider(name: str, settings: ProviderSettings) -> Provider:
    if settings.type == "local":
        return LocalProvider(name, settings)
    if settings.requires_api_key and not settings.api_key:
        log.warning("provider %s: no API key configured; its calls fail until one is set", name)
    return OpenAIProvider(name, settings)


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
            "auth: %d API keys in config; cache scope %s",
            len(settings.auth.keys),
            settings.auth.cache_scope,
        )
    else:
        log.warning("auth: OFF (no API keys yet): every caller is accepted as 'anonymous'")


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
    directory: KeyDirectory
    admin: KeyAdmin
    backends: Backends
    limits: TenantLimits
    offload: OffLoop
    spending: Spending
    addresses: ClientAddresses


def build_keys(settings: Settings, backends: Backends, catalog: Catalog, workers: int) -> KeyAdmin:
    store = build_key_store(backends)
    shared = backend(settings, "limiter") == "redis"  # else each worker holds 1/N of a limit
    directory = KeyDirectory(
        store, interval=settings.stores.keys_refresh_seconds, workers=1 if shared else workers
    )
    return KeyAdmin(store, settings.auth.keys, [m.name for m in catalog], directory=directory)


def build_parts(settings: Settings, workers: int = 1) -> Parts:
    catalog = Catalog.from_settings(settings.models)
    metrics = Metrics(CollectorRegistry(), [model.name for model in catalog])
    backends = build_backends(settings)
    cache = InstrumentedCache(build_cache(backends, metrics.cache_error), metrics)
    limiter = build_limiter(backends)
    limits = TenantLimits(limiter, settings.limits, on_reject=metrics.rate_limited)
    offload = OffLoop(settings.server.offload_per_key, settings.server.parse_processes)
    providers = {name: build_provider(name, spec) for name, spec in settings.providers.items()}
    background = Background()
    spending = build_spending(settings, backends, metrics=metrics, background=background)
    service = EmbeddingService(
        cache,
        build_fetcher(settings.fetch, build_router(settings.upstream, providers, metrics)),
        limits=limits,
        tokenizer=Cl100k(),
        key_prefix=settings.cache.key_prefix,
        background=background,
        offload=offload,
        memo=TokenMemo(settings.cache.token_memo_bytes),
        tokenizers=build_tokenizers(settings, providers),
        budgets=spending.keeper,
        decoded=DecodedEntries(settings.cache.decoded_bytes),
        storage_format=settings.cache.storage_format,
    )
    usage = UsageBuffer(build_usage(backends))
    admin = build_keys(settings, backends, catalog, workers)
    assert admin.directory is not None
    keys = KeyRing(settings.auth, admin.directory)
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
        admin.directory,
        admin,
        backends,
        limits,
        offload,
        spending,
        ClientAddresses(parse_networks(settings.auth.trusted_proxies)),
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
        max_rate=server.max_body_rate,
    )


def build_handlers(parts: Parts) -> Handlers:
    settings = parts.settings
    return Handlers(
        service=parts.service,
        catalog=parts.catalog,
        cache=parts.cache,
        keys=parts.keys,
        auth=settings.auth,
        accountant=Accountant(parts.metrics, parts.usage, parts.spending.history),
        usage_store=parts.usage,
        registry=parts.metrics,
        metrics_need_token=settings.metrics.require_internal_token,
        limits=parts.limits,
        in_flight=fair_share(settings.server),
        offload=parts.offload,
        body_reader=body_reader(settings.server),
        addresses=parts.addresses,
        cache_ttl=settings.cache.ttl_seconds,
    )


async def load_keys(directory: KeyDirectory) -> None:
    """Read the runtime keys before serving; without them every key-holder would get 401."""
    await directory.tick()
    if not directory.loaded:
        log.error("runtime API keys could not be read yet; requests need a config key until then")


def build_cache_routes(parts: Parts) -> CacheRoutes:
    return CacheRoutes(
        parts.cache,
        parts.service.lookup,
        parts.catalog,
        parts.metrics,
        parts.settings.auth,
        auth_off=lambda: not parts.keys.enabled,
    )


def lifecycle(parts: Parts) -> Callable[[web.Application], AsyncIterator[None]]:
    async def run(app: web.Application) -> AsyncIterator[None]:
        for provider in parts.providers.values():
            await provider.start()
        if parts.backends.redis is not None:
            await warn_on_evicting_policy(parts.backends.redis, parts.settings.cache.timeout * 4)
        await load_keys(parts.directory)
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(parts.usage.run()), loop.create_task(parts.directory.run())]
        spending_tasks = await parts.spending.start()
        with startup_objects_frozen():
            yield
        await parts.spending.stop(spending_tasks)
        for task in tasks:
            await stop_task(task)
        parts.offload.close()
        await parts.background.drain()
        await parts.usage.flush()
        await parts.directory.tick()
        for provider in parts.providers.values():
            await provider.close()
        await parts.spending.close()
        await parts.limiter.close()
        await parts.cache.close()
        await parts.backends.close()

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


async def key_teams(admin: KeyAdmin) -> list[str]:
    return [key.team for key in await admin.list()]


def spending_routes(parts: Parts, handlers: Handlers) -> list[web.RouteDef]:
    """The organization usage and costs reports, and teams as projects with budgets."""
    settings, spending = parts.settings, parts.spending
    spend = SpendRoutes(
        spending.history,
        parts.catalog,
        handlers.authenticate,
        sees_everything=lambda p: p.internal or not parts.keys.enabled,
    )
    teams = [key.team for key in settings.auth.keys] + list(settings.teams)
    projects = ProjectRoutes(
        spending.book,
        spending.admin,
        auth=settings.auth,
        config_teams=teams,
        key_teams=lambda: key_teams(parts.admin),
        started_at=handlers.created,
    )
    return spend.routes() + projects.routes()


def closing_access_log(access: AccessLog) -> Callable[[web.Application], AsyncIterator[None]]:
    async def run(app: web.Application) -> AsyncIterator[None]:
        yield
        await access.close()

    return run


def build_app(settings: Settings, workers: int = 1) -> web.Application:
    """``workers``: how many processes serve this port (their limits split without Redis)."""
    parts = build_parts(settings, workers)
    admission = Admission(
        settings.server.max_concurrent_requests,
        StartPacer(settings.server.starts_per_turn),
        parts.addresses,
    )
    access = AccessLog()
    app = web.Application(
        middlewares=[request_context(parts.metrics, admission, access, HeldAnswers())],
        client_max_size=settings.server.max_body_bytes,
    )
    app[ACCESS_LOG] = access
    app.cleanup_ctx.append(closing_access_log(access))  # cleaned up last: after lifecycle
    app[BACKGROUND] = parts.background
    app[KEY_DIRECTORY] = parts.directory
    app[SERVER_SETTINGS] = settings.server
    handlers = build_handlers(parts)
    app.add_routes(handlers.routes())
    key_routes = KeyRoutes(parts.admin, settings.auth, parts.spending.admin)
    app.add_routes(key_routes.routes())
    app.add_routes(spending_routes(parts, handlers))
    app.add_routes(build_cache_routes(parts).routes())
    app.add_routes(
        Dashboard(lambda: not (parts.keys.enabled or settings.auth.internal_token)).routes()
    )
    parts.metrics.seed(metrics_seed(settings, parts.catalog, app))
    app.cleanup_ctx.append(lifecycle(parts))
    return app
