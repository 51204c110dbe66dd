"""HTTP handlers of /v1/organization/cache: see the cache per model, purge a model everywhere
at once (a new generation: O(1), no SCAN), forget given inputs in the scopes named."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from gateway import protocol
from gateway.admin import cache_requests as views
from gateway.admin.access import require_internal
from gateway.admin.audit import audit_log
from gateway.auth import client_ip, forwarded_for, parse_networks
from gateway.cache import Cache
from gateway.cache.lookup import CacheLookup, KeyParts
from gateway.canonical import prepare
from gateway.catalog import Catalog, Model
from gateway.errors import GatewayError, ModelNotFound, ServiceUnavailable
from gateway.metrics import Metrics
from gateway.middleware import REQUEST_ID
from gateway.settings import AuthSettings
from gateway.store import StoreUnavailable
from gateway.tokens import Cl100k

PATH = "/v1/organization/cache"

Outcome = tuple[int, dict[str, Any], str | None]  # status, body, the model acted on
Work = Callable[[web.Request], Awaitable[Outcome]]


class CacheRoutes:
    def __init__(
        self,
        cache: Cache,
        lookup: CacheLookup,
        catalog: Catalog,
        metrics: Metrics,
        auth: AuthSettings,
    ) -> None:
        self._cache = cache
        self._lookup = lookup
        self._catalog = catalog
        self._metrics = metrics
        self._token = auth.internal_token.encode()
        self._trusted = parse_networks(auth.trusted_proxies)
        self._tokenizer: Cl100k | None = None

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(PATH, self._audited("cache.list", self._list)),
            web.delete(f"{PATH}/models/{{model:.+}}", self._audited("cache.purge", self._purge)),
            web.post(f"{PATH}/delete", self._audited("cache.delete", self._delete)),
        ]

    async def _list(self, request: web.Request) -> Outcome:
        contents = await self._cache.contents()
        counts = self._metrics.inputs_by_model()
        data = [
            views.model_view(
                model,
                contents.models.get(self._lookup.tag(model.cache_id)),
                contents,
                counts.get(model.name, {}),
            )
            for model in self._catalog
        ]
        return 200, views.listing(data), None

    async def _purge(self, request: web.Request) -> Outcome:
        model = self._model(request.match_info["model"])
        generation = await self._cache.purge(self._lookup.tag(model.cache_id))
        body = {
            "object": f"{views.OBJECT}.deleted",
            "id": model.name,
            "deleted": True,
            "generation": generation,
        }
        return 200, body, model.name

    async def _delete(self, request: web.Request) -> Outcome:
        raw = await request.read()
        parsed = protocol.parse_embedding_request(raw, self._catalog)
        scopes = views.scopes(orjson.loads(raw))
        self._tokenizer = self._tokenizer or Cl100k()
        prepared = await asyncio.to_thread(prepare, parsed, self._tokenizer)  # may be large
        model = parsed.model
        keys: list[bytes] = []
        for scope in scopes:
            parts = KeyParts(
                model.cache_id,
                scope,
                model.fetch_dimensions(parsed.dimensions),
                prepared.kind,
                prepared.canonical,
            )
            keys += await self._lookup.current_keys(parts)
        deleted = await self._cache.delete_many(keys)
        body = {
            "object": "organization.cache.deletion",
            "model": model.name,
            "inputs": len(parsed.inputs),
            "scopes": scopes,
            "deleted": deleted,
        }
        return 200, body, model.name

    def _model(self, name: str) -> Model:
        model = self._catalog.get(name)
        if model is None:
            raise ModelNotFound(name)
        return model

    def _audited(self, action: str, work: Work) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            status, model, who = 500, request.match_info.get("model"), "refused"
            try:
                require_internal(request, self._token)
                who = "internal token"
                status, body, model = await work(request)
                return web.json_response(body, status=status)
            except GatewayError as exc:
                status = exc.status
                raise
            except StoreUnavailable:
                status = 503
                raise ServiceUnavailable(
                    "The cache store is unavailable; please retry shortly.",
                    headers={"retry-after": "1"},
                ) from None
            finally:
                self._audit(action, request, who, model, status)

        return handle

    def _audit(
        self, action: str, request: web.Request, who: str, model: str | None, status: int
    ) -> None:
        """The admin API's audit line (gateway/admin/audit.py), naming a model, not a key."""
        ip = client_ip(
            request.remote,
            forwarded_for(request.headers.getall("X-Forwarded-For", [])),
            self._trusted,
        )
        actor = {"credential": who, "ip": ip, "request_id": request[REQUEST_ID]}
        line = {"audit": action, "actor": actor, "model": model, "status": status}
        audit_log.info(orjson.dumps(line).decode())
