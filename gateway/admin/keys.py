"""HTTP handlers of /v1/organization/api_keys: internal token → parse → KeyAdmin → JSON."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from gateway.admin.audit import Audited, Outcome
from gateway.admin.budgets import BudgetAdmin, parse_budget
from gateway.apikeys import views
from gateway.apikeys.admin import KeyAdmin
from gateway.apikeys.requests import parse_changes, parse_grace, parse_page
from gateway.errors import InvalidRequest
from gateway.settings import AuthSettings

PATH = "/v1/organization/api_keys"


async def _json(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest("The request body is not valid JSON.") from None


class KeyRoutes:
    def __init__(
        self, admin: KeyAdmin, auth: AuthSettings, budgets: BudgetAdmin | None = None
    ) -> None:
        self._budgets = budgets
        self._admin = admin
        self._audited = Audited(auth, subject="key_id", store="key")

    def _split_budget(self, body: Any) -> tuple[Any, dict[str, Any]]:
        """The body without `budget` (for the key store), and the budget part, checked before
        anything changes."""
        if self._budgets is None or not isinstance(body, dict) or "budget" not in body:
            return body, {}
        parse_budget(body["budget"])
        return {k: v for k, v in body.items() if k != "budget"}, {"budget": body["budget"]}

    async def _with_budget(self, view: dict[str, Any]) -> dict[str, Any]:
        if self._budgets is None:
            return view
        return view | await self._budgets.fields("key", view["id"])

    async def _create(self, request: web.Request) -> Outcome:
        body, budget = self._split_budget(await _json(request))
        changes = parse_changes(body, self._admin.model_names, create=True)
        key, secret = await self._admin.create(changes)
        if self._budgets is not None:
            await self._budgets.apply("key", key.id, budget)
        return 201, await self._with_budget(views.key_object(key, None, value=secret)), key.id

    async def _list(self, request: web.Request) -> Outcome:
        after, limit = parse_page(request.query)
        keys, used = await self._admin.list(), await self._admin.last_used()
        page = views.page(keys, used, after, limit)
        page["data"] = [await self._with_budget(view) for view in page["data"]]
        return 200, page, None

    async def _get(self, request: web.Request) -> Outcome:
        key = await self._admin.get(request.match_info["key_id"])
        used = await self._admin.last_used()
        return 200, await self._with_budget(views.key_object(key, used.get(key.id))), key.id

    async def _update(self, request: web.Request) -> Outcome:
        body, budget = self._split_budget(await _json(request))
        changes = parse_changes(body, self._admin.model_names, create=False)
        key_id = request.match_info["key_id"]
        if budget and not body:  # a budget alone: config keys take one too
            key = await self._admin.get(key_id)
        else:
            key = await self._admin.update(key_id, changes)
        if self._budgets is not None:
            await self._budgets.apply("key", key.id, budget)
        used = await self._admin.last_used()
        return 200, await self._with_budget(views.key_object(key, used.get(key.id))), key.id

    async def _rotate(self, request: web.Request) -> Outcome:
        grace = parse_grace(await _json(request))
        key, secret = await self._admin.rotate(request.match_info["key_id"], grace)
        used = await self._admin.last_used()
        view = views.key_object(key, used.get(key.id), value=secret)
        return 200, await self._with_budget(view), key.id

    async def _revoke(self, request: web.Request) -> Outcome:
        key = await self._admin.revoke(request.match_info["key_id"])
        return 200, views.deleted_object(key), key.id

    def routes(self) -> list[web.RouteDef]:
        one = PATH + "/{key_id}"
        return [
            web.post(PATH, self._audited("api_key.create", self._create)),
            web.get(PATH, self._audited("api_key.list", self._list)),
            web.get(one, self._audited("api_key.get", self._get)),
            web.post(one, self._audited("api_key.update", self._update)),
            web.post(one + "/rotate", self._audited("api_key.rotate", self._rotate)),
            web.delete(one, self._audited("api_key.revoke", self._revoke)),
        ]
