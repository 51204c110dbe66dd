"""Budgets and projects set at runtime: one behaviour suite for every book store, and the
book that mirrors them into the policies every request reads."""

from __future__ import annotations

from gateway.budgets import Budget
from gateway.budgets.book import BookStore, BudgetBook, Project
from gateway.budgets.policies import Policies


async def test_an_entry_is_stored_replaced_and_removed(book_store: BookStore) -> None:
    await book_store.put("budget:key:a", b'{"usd": "1", "period": "daily"}')
    await book_store.put("budget:key:a", b"null")
    await book_store.put("project:ads", b'{"name": "Ads", "created_at": 5}')
    assert await book_store.entries() == {
        "budget:key:a": b"null",
        "project:ads": b'{"name": "Ads", "created_at": 5}',
    }
    await book_store.put("project:ads", None)
    assert list(await book_store.entries()) == ["budget:key:a"]


async def test_a_budget_set_here_applies_at_once(book_store: BookStore) -> None:
    policies = Policies({("team", "red"): Budget.of(1, "daily")})
    await BudgetBook(book_store, policies).set_budget("team", "red", Budget.of(5, "weekly"))
    assert policies.budget("team", "red") == Budget.of(5, "weekly")


async def test_another_instance_sees_budgets_and_projects_on_refresh(
    book_store: BookStore,
) -> None:
    here, there = Policies(), Policies({("key", "k"): Budget.of(1, "daily")})
    await BudgetBook(book_store, here).set_budget("key", "k", None)
    await BudgetBook(book_store, here).save_project(Project("ads", "Ads", 7))
    other = BudgetBook(book_store, there)
    await other.refresh()
    assert there.budget("key", "k") is None  # removed at runtime, though config sets one
    assert other.projects == {"ads": Project("ads", "Ads", 7)}


async def test_an_entry_that_is_not_a_record_is_ignored(book_store: BookStore) -> None:
    await book_store.put("budget:key:a", b'{"usd": "lots", "period": "daily"}')
    await book_store.put("budget:key:b", b'{"usd": "2", "period": "yearly"}')
    await book_store.put("project:x", b"[1, 2]")
    await book_store.put("budget:team:ok", b'{"usd": "2", "period": "daily"}')
    policies = Policies()
    book = BudgetBook(book_store, policies)
    await book.refresh()
    assert policies.overrides == {("team", "ok"): Budget.of(2, "daily")}
    assert book.projects == {}
