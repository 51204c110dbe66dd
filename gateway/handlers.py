"""Thin HTTP handlers: parse → service → respond."""

from __future__ import annotations

import time

from aiohttp import web

from gateway import protocol, quota
from gateway.auth import KeyRing, check_model, client_ip, parse_networks, presented_key
from gateway.cache import Cache
from gateway.catalog import Catalog
from gateway.service import Caller, EmbeddingResult, EmbeddingService
from gateway.settings import AuthSettings

JSON = "application/json"


def cache_headers(result: EmbeddingResult) -> dict[str, str]:
    if result.hits == result.inputs:
        state = "HIT"
    elif result.hits == 0:
        state = "MISS"
    else:
        state = "PARTIAL"
    return {"x-cache": state, "x-cache-hits": f"{result.hits}/{result.inputs}"}


class Handlers:
    def __init__(
        self,
        service: EmbeddingService,
        catalog: Catalog,
        cache: Cache,
        keys: KeyRing,
        auth: AuthSettings,
    ) -> None:
        self._service = service
        self._catalog = catalog
        self._cache = cache
        self._keys = keys
        self._scope_mode = auth.cache_scope
        self._trusted = parse_networks(auth.trusted_proxies)
        self._created = int(time.time())

    def _caller(self, request: web.Request) -> Caller:
        headers = request.headers
        principal = self._keys.authenticate(
            presented_key(headers.get("Authorization"), headers.get("x-api-key"))
        )
        ip = client_ip(request.remote, headers.get("X-Forwarded-For"), self._trusted)
        return Caller(principal, ip, principal.cache_scope(self._scope_mode))

    async def embeddings(self, request: web.Request) -> web.Response:
        caller = self._caller(request)
        parsed = protocol.parse_embedding_request(await request.read(), self._catalog)
        check_model(caller.principal, parsed.model.name)
        result = await self._service.embed(parsed, caller)
        body = protocol.embedding_response(
            parsed.model.name,
            result.vectors,
            parsed.output_dimensions,
            parsed.encoding_format,
            result.prompt_tokens,
        )
        headers = cache_headers(result) | quota.headers(result.quota)
        return web.Response(body=body, content_type=JSON, headers=headers)

    async def models(self, request: web.Request) -> web.Response:
        return web.Response(
            body=protocol.models_list(self._catalog, self._created), content_type=JSON
        )

    async def embedding_models(self, request: web.Request) -> web.Response:
        body = protocol.embedding_models_list(self._catalog, self._created)
        return web.Response(body=body, content_type=JSON)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        ready = await self._cache.ping()
        status = 200 if ready else 503
        body = {"status": "ready" if ready else "unavailable", "cache": self._cache.name}
        return web.json_response(body, status=status)

    def routes(self) -> list[web.RouteDef]:
        routes = [web.get("/healthz", self.healthz), web.get("/readyz", self.readyz)]
        for prefix in ("/v1", "/api/v1"):
            routes += [
                web.post(f"{prefix}/embeddings", self.embeddings),
                web.get(f"{prefix}/models", self.models),
                web.get(f"{prefix}/embedding-models", self.embedding_models),
            ]
        return routes
