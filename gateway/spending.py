"""Cost control, composed from settings: budgets (a ledger, the configured and runtime
policies, the keeper that enforces them), alerts to webhooks, and the spend history. The app
builds one `Spending` and hands its parts to the service, the accountant and the routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from gateway.admin.budgets import BudgetAdmin
from gateway.background import Background, stop_task
from gateway.budgets import Budget, Ledger
from gateway.budgets.alerts import AlertWatch
from gateway.budgets.book import BookStore, BudgetBook
from gateway.budgets.keeper import BudgetKeeper
from gateway.budgets.memory import MemoryBook, MemoryLedger
from gateway.budgets.money import units_to_usd
from gateway.budgets.policies import Owner, Policies
from gateway.budgets.redis import RedisBook, RedisLedger
from gateway.budgets.sqlite import SqliteBook, SqliteLedger
from gateway.cache.redis import RedisClient
from gateway.embedded import Database
from gateway.guarded import GuardedBook, GuardedHistory, GuardedLedger
from gateway.history import HistoryStore
from gateway.history.buffer import HistoryBuffer
from gateway.history.memory import MemoryHistory
from gateway.history.redis import RedisHistory
from gateway.history.sqlite import SqliteHistory
from gateway.metrics import Metrics
from gateway.settings import BudgetSettings, Settings, backend, key_id
from gateway.store import StoreUnavailable
from gateway.stores import Backends
from gateway.webhooks import WebhookSender

log = logging.getLogger("gateway")


def _budget(spec: BudgetSettings) -> Budget:
    return Budget.of(spec.usd, spec.period)


def configured_budgets(settings: Settings) -> dict[Owner, Budget]:
    budgets: dict[Owner, Budget] = {
        ("key", key_id(key)): _budget(key.budget) for key in settings.auth.keys if key.budget
    }
    for team, spec in settings.teams.items():
        if spec.budget is not None:
            budgets[("team", team)] = _budget(spec.budget)
    return budgets


@dataclass(frozen=True, slots=True)
class Stores:
    ledger: Ledger
    book: BookStore
    history: HistoryStore


def build_stores(settings: Settings, backends: Backends) -> Stores:
    """Each store on its backend, behind that backend's guards (memory needs none)."""
    budgets, history = backend(settings, "budgets"), backend(settings, "history")
    log.info("budgets: %s; spend history: %s", budgets, history)
    client, database = backends.redis, backends.database
    ledger, book = _budget_stores(budgets, client, database, settings.cache.key_prefix)
    history_store = _history_store(settings, history, client, database)
    guards = {"redis": backends.redis_guards, "sqlite": backends.sqlite_guards}
    if budgets in guards:
        reads, writes = guards[budgets].reads, guards[budgets].writes
        ledger, book = GuardedLedger(ledger, reads, writes), GuardedBook(book, reads, writes)
    if history in guards:
        history_store = GuardedHistory(history_store, guards[history].reads, guards[history].writes)
    return Stores(ledger, book, history_store)


def _budget_stores(
    kind: str, client: RedisClient | None, database: Database, prefix: str
) -> tuple[Ledger, BookStore]:
    if kind == "sqlite":
        return SqliteLedger(database), SqliteBook(database)
    if kind == "redis":
        ledger = RedisLedger(_need(client), prefix=f"{prefix}:budget:{{budget}}:")
        return ledger, RedisBook(_need(client), prefix=prefix)
    return MemoryLedger(), MemoryBook()


def _history_store(
    settings: Settings, kind: str, client: RedisClient | None, database: Database
) -> HistoryStore:
    if kind == "sqlite":
        return SqliteHistory(database)
    if kind == "redis":
        hours = settings.history.retention_days * 24
        return RedisHistory(_need(client), prefix=settings.cache.key_prefix, retention_hours=hours)
    return MemoryHistory()


def _need(client: RedisClient | None) -> RedisClient:
    assert client is not None, "settings checked that a Redis URL is set"
    return client


@dataclass(frozen=True, slots=True)
class Spending:
    keeper: BudgetKeeper
    stores: Stores
    policies: Policies
    book: BudgetBook
    history: HistoryBuffer
    webhooks: WebhookSender
    admin: BudgetAdmin

    async def start(self) -> list[asyncio.Task[None]]:
        try:
            await self.book.refresh()
        except StoreUnavailable as exc:
            log.error("runtime budgets could not be read yet (%s); configured ones apply", exc)
        loop = asyncio.get_running_loop()
        work = [self.history.run(), self.book.run(), self.webhooks.run()]
        return [loop.create_task(w) for w in work]

    async def stop(self, tasks: list[asyncio.Task[None]]) -> None:
        for task in tasks:
            await stop_task(task)
        with contextlib.suppress(StoreUnavailable):
            await self.history.flush()

    async def close(self) -> None:
        """After background work has drained: the stores let go of their files."""
        for store in (self.stores.ledger, self.stores.book, self.stores.history):
            await store.close()


def build_spending(
    settings: Settings, backends: Backends, *, metrics: Metrics, background: Background
) -> Spending:
    stores = build_stores(settings, backends)
    policies = Policies(configured_budgets(settings))
    alerts = settings.alerts
    webhooks = WebhookSender(
        alerts.webhooks, timeout=alerts.timeout, max_attempts=alerts.max_attempts
    )
    watch = AlertWatch(stores.ledger, webhooks.send, alerts.thresholds) if alerts.webhooks else None
    keeper = BudgetKeeper(
        stores.ledger,
        policies,
        alerts=watch,
        spawn=background.spawn,
        observe=lambda account, used: metrics.budget(
            account.scope, account.owner, units_to_usd(used), units_to_usd(account.budget.limit)
        ),
    )
    history = HistoryBuffer(stores.history, retention_hours=settings.history.retention_days * 24)
    book = BudgetBook(stores.book, policies)
    admin = BudgetAdmin(book, policies, stores.ledger)
    return Spending(keeper, stores, policies, book, history, webhooks, admin)
