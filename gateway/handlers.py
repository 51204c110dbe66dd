"""Thin HTTP handlers: who is calling → parse → service → respond → account."""

from __future__ import annotations

import contextlib
import functools
import hmac
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway import cache_control, openapi, protocol, quota
from gateway.accounting import Accountant
from gateway.auth import (
    ANONYMOUS,
    KeyRing,
    Principal,
    check_model,
    presented_key,
)
from gateway.bodyparse import OUT_OF_PROCESS_BYTES
from gateway.cache import Cache
from gateway.catalog import Catalog, Model
from gateway.errors import (
    AuthenticationFailed,
    GatewayError,
    ModelNotFound,
    ServiceUnavailable,
)
from gateway.fairshare import BodyReader, InFlight, OffLoop
from gateway.metrics import Metrics
from gateway.middleware import FACTS
from gateway.pacing import ClientAddresses
from gateway.quota import TenantLimits
from gateway.service import Caller, EmbeddingResult, EmbeddingService
from gateway.settings import AuthSettings
from gateway.store import StoreUnavailable
from gateway.usage.buffer import UsageBuffer
from gateway.usage.report import report

JSON = "application/json"
OFF_LOOP_BYTES = 256 * 1024  # larger bodies are parsed on a thread


def cache_headers(result: EmbeddingResult) -> dict[str, str]:
    if result.refreshed:
        state = "REFRESH"
    elif result.hits == result.inputs:
        state = "HIT"
    elif result.hits == 0:
        state = "MISS"
    else:
        state = "PARTIAL"
    return {"x-cache": state, "x-cache-hits": f"{result.hits}/{result.inputs}"}


@dataclass(kw_only=True)
class Handlers:
    service: EmbeddingService
    catalog: Catalog
    cache: Cache
    keys: KeyRing
    auth: AuthSettings
    accountant: Accountant
    usage_store: UsageBuffer
    registry: Metrics
    metrics_need_token: bool
    limits: TenantLimits
    in_flight: InFlight
    offload: OffLoop
    body_reader: BodyReader
    addresses: ClientAddresses
    cache_ttl: int = 30 * 24 * 3600  # the most x-gateway-cache-ttl may ask for
    created: int = field(default_factory=lambda: int(time.time()))

    def __post_init__(self) -> None:
        self._internal_token = self.auth.internal_token.encode()

    def _ip(self, request: web.Request) -> str:
        return self.addresses.of(request)

    def _caller(self, request: web.Request, ip: str | None = None) -> Caller:
        headers = request.headers
        principal = self.keys.authenticate(
            presented_key(headers.get("Authorization"), headers.get("x-api-key"))
        )
        request[FACTS]["key"] = principal.name
        ip = ip or self._ip(request)
        return Caller(principal, ip, principal.cache_scope(self.auth.cache_scope))

    def authenticate(self, request: web.Request) -> Principal:
        return self._caller(request).principal

    async def embeddings(self, request: web.Request) -> web.Response:
        """Charged from the headers alone, before any byte of the body is read: a failed
        authentication pays the IP's bucket; a known caller takes one of its in-flight slots
        (checked before anything is awaited) and pays its request buckets. A refused or failed
        request of a known caller is filed under its model once that was read, "" before."""
        ip = self._ip(request)
        try:
            caller = self._caller(request, ip)
        except AuthenticationFailed:
            await self.limits.admit_anyone(ip)
            raise
        try:
            with self._share(caller):
                quota = await self.limits.admit_request(caller.principal, ip)
                paid = Caller(caller.principal, caller.client_ip, caller.cache_scope, quota)
                return await self._embeddings(request, paid)
        except GatewayError as error:  # counted in the spend history when it is a refusal
            self.accountant.failed(caller, request[FACTS].get("model", ""), error)
            raise

    def _share(self, caller: Caller) -> contextlib.AbstractContextManager[Any]:
        if caller.principal.internal:
            return contextlib.nullcontext()
        key = caller.principal.key_id if self.keys.enabled else None  # anonymous is everyone
        return self.in_flight.enter(key, caller.client_ip)

    async def _embeddings(self, request: web.Request, caller: Caller) -> web.Response:
        parsed = await self._read(request, caller)
        request[FACTS]["model"] = parsed.model.name
        check_model(caller.principal, parsed.model.name)
        controls = self._cache_controls(request, caller)
        result = await self.service.embed(parsed, caller, controls)
        fragments = self.service.decoded.fragments(
            result.keys, result.vectors, parsed.encoding_format
        )
        body = protocol.embedding_body(parsed.model.name, fragments, result.prompt_tokens)
        charge = self.accountant.record(caller, parsed.model, result)
        request[FACTS].update(
            inputs=result.inputs,
            hits=result.hits,
            upstream_ms=round(result.upstream_seconds * 1000, 3),
        )
        headers = cache_headers(result) | quota.headers(result.quota) | charge.headers()
        if result.budget is not None:
            headers |= result.budget.headers()
        return web.Response(body=body, content_type=JSON, headers=headers)

    async def _read(self, request: web.Request, caller: Caller) -> protocol.EmbeddingRequest:
        """A body announced as large is read and parsed in one of its tenant's turns for heavy
        work: a tenant sending several at once has them arrive one after another (the rest wait
        in TCP's flow control), so the event loop never carries many of its uploads at once."""
        length, tenant = request.content_length or 0, caller.principal.key_id
        if length < OFF_LOOP_BYTES:
            return await self._parse(caller, await self.body_reader.read(request, tenant))
        async with self.offload.turn(tenant):
            if length >= OUT_OF_PROCESS_BYTES and self.offload.parser.enabled:
                upload = functools.partial(self.body_reader.read_into, request, tenant)
                data = await self.offload.parse_upload_elsewhere(upload)
                return protocol.embedding_request(data, self.catalog)
            return await self._parse_large(await self.body_reader.read(request, tenant))

    async def _parse(self, caller: Caller, body: bytes) -> protocol.EmbeddingRequest:
        if len(body) < OFF_LOOP_BYTES:
            return protocol.parse_embedding_request(body, self.catalog)
        async with self.offload.turn(caller.principal.key_id):  # it did not say it was large
            return await self._parse_large(body)

    async def _parse_large(self, body: bytes) -> protocol.EmbeddingRequest:
        if len(body) >= OUT_OF_PROCESS_BYTES and self.offload.parser.enabled:
            data = await self.offload.parse_elsewhere(body)
            return protocol.embedding_request(data, self.catalog)
        return await self.offload.on_thread(protocol.parse_embedding_request, body, self.catalog)

    def _cache_controls(self, request: web.Request, caller: Caller) -> cache_control.CacheControls:
        headers = request.headers
        controls = cache_control.parse(
            headers.get("Cache-Control"), headers.get(cache_control.TTL_HEADER), self.cache_ttl
        )
        principal = caller.principal
        cache_control.check_allowed(controls, principal.cache_controls, principal.internal)
        return controls

    async def usage(self, request: web.Request) -> web.Response:
        principal = self._caller(request).principal
        only_key = None if principal.internal or not self.keys.enabled else principal.key_id
        try:
            body = report(await self.usage_store.table(), self.catalog, only_key, self.keys.names)
        except StoreUnavailable:
            body = self._partial_usage(only_key)
        return web.json_response(body)

    def _partial_usage(self, only_key: str | None) -> dict[str, Any]:
        """The usage store cannot answer: what this instance has not written yet, marked
        partial, or a 503 when it has nothing."""
        pending = self.usage_store.pending()
        if not pending:
            raise ServiceUnavailable(
                "Usage is temporarily unavailable; please retry shortly.",
                headers={"retry-after": "1"},
            )
        return report(pending, self.catalog, only_key, self.keys.names) | {"partial": True}

    async def metrics(self, request: web.Request) -> web.Response:
        if self.metrics_need_token and not self._is_internal(request):
            raise AuthenticationFailed("/metrics needs the internal token.")
        body, content_type = self.registry.render()
        return web.Response(body=body, headers={"Content-Type": content_type})

    def _is_internal(self, request: web.Request) -> bool:
        token = presented_key(
            request.headers.get("Authorization"), request.headers.get("x-api-key")
        )
        return bool(self._internal_token) and hmac.compare_digest(
            (token or "").encode(), self._internal_token
        )

    def _lister(self, request: web.Request) -> Principal:
        """Who asks for the model list: a presented key must be valid and sees only its own
        models; no key at all sees the public list (NanoGPT's is public too)."""
        headers = request.headers
        presented = presented_key(headers.get("Authorization"), headers.get("x-api-key"))
        return ANONYMOUS if presented is None else self.keys.authenticate(presented)

    def _visible(self, request: web.Request) -> list[Model]:
        principal = self._lister(request)
        return [model for model in self.catalog if principal.may_use(model.name)]

    async def models(self, request: web.Request) -> web.Response:
        body = protocol.models_list(self._visible(request), self.created)
        return web.Response(body=body, content_type=JSON)

    async def model(self, request: web.Request) -> web.Response:
        name = request.match_info["model"]
        model = self.catalog.get(name)
        if model is None or not self._lister(request).may_use(name):
            raise ModelNotFound(name)
        return web.Response(body=protocol.model_object(model, self.created), content_type=JSON)

    async def embedding_models(self, request: web.Request) -> web.Response:
        body = protocol.embedding_models_list(self._visible(request), self.created)
        return web.Response(body=body, content_type=JSON)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        ready = await self.cache.ping()
        body = {"status": "ready" if ready else "unavailable", "cache": self.cache.name}
        return web.json_response(body, status=200 if ready else 503)

    async def openapi_json(self, request: web.Request) -> web.Response:
        return web.json_response(openapi.document(self.catalog, auth_required=self.keys.enabled))

    def routes(self) -> list[web.RouteDef]:
        routes = [
            web.get("/healthz", self.healthz),
            web.get("/readyz", self.readyz),
            web.get("/metrics", self.metrics),
            web.get("/openapi.json", self.openapi_json),
        ]
        for prefix in ("/v1", "/api/v1"):
            routes += [
                web.post(f"{prefix}/embeddings", self.embeddings),
                web.get(f"{prefix}/models", self.models),
                # Ids hold slashes (BAAI/bge-m3): the name takes the rest of the path.
                web.get(f"{prefix}/models/{{model:.+}}", self.model),
                web.get(f"{prefix}/embedding-models", self.embedding_models),
                web.get(f"{prefix}/usage", self.usage),
            ]
        return routes
