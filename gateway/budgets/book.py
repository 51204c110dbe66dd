"""Budgets and projects set at runtime (the admin API), kept in a store every instance reads
and mirrored here: `Policies` sees a change made on this instance at once, on others within one
refresh interval. Entries are JSON: `budget:key:<id>` / `budget:team:<team>` hold a budget or
null (no budget, even if config sets one); `project:<id>` holds a project's record."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from gateway.budgets import Budget, Scope
from gateway.budgets.money import units_to_usd_text, usd_to_units
from gateway.budgets.period import PERIODS
from gateway.budgets.policies import Owner, Policies
from gateway.store import StoreUnavailable

log = logging.getLogger("gateway.budgets")


class BookStore(Protocol):
    name: str

    async def put(self, name: str, body: bytes | None) -> None: ...

    async def entries(self) -> dict[str, bytes]: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    name: str
    created_at: int
    archived_at: int | None = None


def budget_json(budget: Budget | None) -> dict[str, Any] | None:
    if budget is None:
        return None
    return {"usd": units_to_usd_text(budget.limit), "period": budget.period}


def _budget(body: Any) -> Budget | None:
    if body is None:
        return None
    period = body["period"]
    if period not in PERIODS:
        raise ValueError(period)
    return Budget(usd_to_units(body["usd"]), period)


class BudgetBook:
    def __init__(self, store: BookStore, policies: Policies, *, interval: float = 1.0) -> None:
        self._store = store
        self._policies = policies
        self._interval = interval
        self.projects: dict[str, Project] = {}

    async def set_budget(self, scope: Scope, owner: str, budget: Budget | None) -> None:
        body = orjson.dumps(budget_json(budget))
        await self._store.put(f"budget:{scope}:{owner}", body)
        self._policies.overrides = {**self._policies.overrides, (scope, owner): budget}

    async def save_project(self, project: Project) -> None:
        body = {"name": project.name, "created_at": project.created_at}
        await self._store.put(f"project:{project.id}", orjson.dumps(body))
        self.projects = {**self.projects, project.id: project}

    async def refresh(self) -> None:
        entries = await self._store.entries()
        overrides: dict[Owner, Budget | None] = {}
        projects: dict[str, Project] = {}
        for name, body in entries.items():
            try:
                _read(name, orjson.loads(body), overrides, projects)
            except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
                log.warning("budget book: entry %r ignored (not a valid record)", name)
        self._policies.overrides, self.projects = overrides, projects

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.refresh()
            except StoreUnavailable as exc:
                log.warning("budget book: refresh failed, keeping what was read: %s", exc)


def _read(
    name: str,
    body: Any,
    overrides: dict[Owner, Budget | None],
    projects: dict[str, Project],
) -> None:
    kind, _, rest = name.partition(":")
    if kind == "budget":
        scope, _, owner = rest.partition(":")
        if scope not in ("key", "team"):
            raise ValueError(scope)
        overrides[("key" if scope == "key" else "team", owner)] = _budget(body)
    elif kind == "project":
        projects[rest] = Project(rest, str(body["name"]), int(body["created_at"]))
