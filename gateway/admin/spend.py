"""HTTP handlers of GET /v1/organization/usage/embeddings and /v1/organization/costs: who is
asking → parse the query → read the hours it covers → a page of buckets as JSON, or as CSV
(`?format=csv` or `Accept: text/csv`). The internal token sees every key; a key sees itself."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from gateway.auth import Principal
from gateway.catalog import Catalog
from gateway.errors import InvalidRequest, ServiceUnavailable
from gateway.history import HOUR
from gateway.history.buffer import HistoryBuffer
from gateway.history.query import COSTS, USAGE, Query, Spec, parse
from gateway.history.report import (
    COSTS_COLUMNS,
    USAGE_COLUMNS,
    Price,
    costs_page,
    to_csv,
    usage_page,
)
from gateway.store import StoreUnavailable

USAGE_PATH = "/v1/organization/usage/embeddings"
COSTS_PATH = "/v1/organization/costs"

Authenticate = Callable[[web.Request], Principal]
Build = Callable[[Any, Query, Price], dict[str, Any]]


def wants_csv(request: web.Request) -> bool:
    """`?format=csv` or `json` decides; without it, `Accept: text/csv` asks for CSV."""
    chosen = request.query.get("format")
    if chosen not in (None, "json", "csv"):
        raise InvalidRequest("Invalid 'format': must be 'json' or 'csv'.", param="format")
    if chosen is not None:
        return chosen == "csv"
    return "text/csv" in request.headers.get("Accept", "")


class SpendRoutes:
    def __init__(
        self,
        history: HistoryBuffer,
        catalog: Catalog,
        authenticate: Authenticate,
        *,
        sees_everything: Callable[[Principal], bool],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._history = history
        self._catalog = catalog
        self._authenticate = authenticate
        self._sees_everything = sees_everything
        self._clock = clock

    def _price(self, model: str) -> float:
        entry = self._catalog.get(model)
        return entry.price_per_million if entry is not None else 0.0

    async def _answer(
        self, request: web.Request, spec: Spec, build: Build, columns: tuple[str, ...]
    ) -> web.Response:
        principal = self._authenticate(request)
        query = parse(request.query, spec, self._clock())
        csv = wants_csv(request)
        if not self._sees_everything(principal):
            query = query.only("api_key_id", frozenset({principal.key_id}))
        try:
            table = await self._history.read(query.page // HOUR, query.page_end // HOUR)
        except StoreUnavailable:
            raise ServiceUnavailable(
                "Usage history is unavailable; please retry shortly.",
                headers={"retry-after": "1"},
            ) from None
        page = build(table, query, self._price)
        if csv:
            return web.Response(text=to_csv(page, columns), content_type="text/csv")
        return web.json_response(page)

    async def usage(self, request: web.Request) -> web.Response:
        return await self._answer(request, USAGE, usage_page, USAGE_COLUMNS)

    async def costs(self, request: web.Request) -> web.Response:
        return await self._answer(request, COSTS, costs_page, COSTS_COLUMNS)

    def routes(self) -> list[web.RouteDef]:
        return [web.get(USAGE_PATH, self.usage), web.get(COSTS_PATH, self.costs)]
