"""HTTP handlers of /v1/organization/projects: teams, shown as OpenAI-style projects, with the
budget each may spend. Internal token only; every call writes an audit line."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson
from aiohttp import web

from gateway.admin.audit import Audited, Outcome
from gateway.admin.budgets import BudgetAdmin
from gateway.budgets.book import BudgetBook, Project
from gateway.errors import (
    InvalidRequest,
    NotFound,
)
from gateway.settings import AuthSettings

PATH = "/v1/organization/projects"
PROJECT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

KeyTeams = Callable[[], Awaitable[Iterable[str]]]  # the teams of every key, runtime ones too


async def read_json(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        raise InvalidRequest("The request body must be a JSON object.")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


class ProjectRoutes:
    def __init__(
        self,
        book: BudgetBook,
        budgets: BudgetAdmin,
        *,
        auth: AuthSettings,
        config_teams: Iterable[str],
        key_teams: KeyTeams | None = None,
        started_at: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._book = book
        self._budgets = budgets
        self._audited = Audited(auth, subject="project_id", store="budget")
        self._config_teams = sorted(set(config_teams) - {""})
        self._key_teams = key_teams
        self._started_at = started_at
        self._clock = clock

    async def _projects(self) -> dict[str, Project]:
        """Teams named in config or by a key at runtime, then those made through this API."""
        teams = set(self._config_teams)
        if self._key_teams is not None:
            teams |= set(await self._key_teams()) - {""}
        known = {t: Project(t, t, self._started_at) for t in sorted(teams)}
        return known | self._book.projects

    async def _view(self, project: Project) -> dict[str, Any]:
        return {
            "object": "organization.project",
            "id": project.id,
            "name": project.name,
            "created_at": project.created_at,
            "archived_at": project.archived_at,
            "status": "active" if project.archived_at is None else "archived",
            "source": "config" if project.id in self._config_teams else "runtime",
        } | await self._budgets.fields("team", project.id)

    async def _list(self, request: web.Request) -> Outcome:
        projects = sorted((await self._projects()).values(), key=lambda p: p.id)
        after = request.query.get("after")
        if after:
            projects = [p for p in projects if p.id > after]
        limit = _limit(request.query.get("limit"))
        page = [await self._view(p) for p in projects[:limit]]
        body = {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(projects) > limit,
        }
        return 200, body, None

    async def _get_project(self, request: web.Request) -> Project:
        project = (await self._projects()).get(request.match_info["project_id"])
        if project is None:
            raise NotFound(f"No project found with id '{request.match_info['project_id']}'.")
        return project

    async def _retrieve(self, request: web.Request) -> Outcome:
        project = await self._get_project(request)
        return 200, await self._view(project), project.id

    async def _create(self, request: web.Request) -> Outcome:
        body = await read_json(request)
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise InvalidRequest("'name' is required.", param="name")
        project_id = body.get("id", name)
        if not isinstance(project_id, str) or not PROJECT_ID.fullmatch(project_id):
            raise InvalidRequest(
                "A project id (its team name) is 1-64 letters, digits, '.', '_' or '-'.",
                param="id",
            )
        if project_id in await self._projects():
            raise InvalidRequest(f"A project with id '{project_id}' already exists.", param="id")
        project = Project(project_id, name.strip(), int(self._clock()))
        await self._apply(project, body)
        return 200, await self._view(project), project.id

    async def _update(self, request: web.Request) -> Outcome:
        project = await self._get_project(request)
        body = await read_json(request)
        name = body.get("name", project.name)
        if not isinstance(name, str) or not name.strip():
            raise InvalidRequest("'name' must be a non-empty string.", param="name")
        project = Project(project.id, name.strip(), project.created_at)
        await self._apply(project, body)
        return 200, await self._view(project), project.id

    async def _apply(self, project: Project, body: dict[str, Any]) -> None:
        await self._budgets.apply("team", project.id, body)
        await self._book.save_project(project)

    def routes(self) -> list[web.RouteDef]:
        item = f"{PATH}/{{project_id}}"
        return [
            web.get(PATH, self._audited("projects.list", self._list)),
            web.post(PATH, self._audited("projects.create", self._create)),
            web.get(item, self._audited("projects.retrieve", self._retrieve)),
            web.post(item, self._audited("projects.update", self._update)),
        ]


def _limit(raw: str | None) -> int:
    if raw is None:
        return 20
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise InvalidRequest("'limit' must be between 1 and 100.", param="limit")
    return int(raw)
