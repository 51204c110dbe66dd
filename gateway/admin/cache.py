"""HTTP handlers of /v1/organization/cache: see the cache per model, purge a model everywhere
at once (a new generation: O(1), no SCAN), forget given inputs in the scopes named."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson
from aiohttp import web

from gateway import protocol
from gateway.admin import cache_requests as views
from gateway.admin.audit import Audited, Outcome
from gateway.cache import Cache
from gateway.cache.lookup import CacheLookup, KeyParts
from gateway.canonical import prepare
from gateway.catalog import Catalog, Model
from gateway.errors import ModelNotFound
from gateway.metrics import Metrics
from gateway.settings import AuthSettings
from gateway.tokens import Cl100k

PATH = "/v1/organization/cache"


class CacheRoutes:
    def __init__(
        self,
        cache: Cache,
        lookup: CacheLookup,
        catalog: Catalog,
        metrics: Metrics,
        auth: AuthSettings,
        *,
        auth_off: Callable[[], bool] = lambda: False,
    ) -> None:
        self._cache = cache
        self._lookup = lookup
        self._catalog = catalog
        self._metrics = metrics
        self._audited = Audited(auth, subject="model", store="cache", auth_off=auth_off)
        self._tokenizer: Cl100k | None = None

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(PATH, self._audited("cache.list", self._list, read_only=True)),
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
