"""Budget arithmetic: exact units, and UTC period boundaries on an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.budgets import Account, Budget, admits
from gateway.budgets.money import (
    UNITS_PER_USD,
    price_units_per_token,
    token_cost,
    units_to_usd_text,
    usd_to_units,
)
from gateway.budgets.period import rfc3339, window
from tests.support.clock import FakeClock


def at(*parts: int) -> int:
    year, month, day, hour, minute, second = (*parts, 0, 0, 0)[:6]
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp())


def test_dollars_become_exact_integer_units() -> None:
    assert usd_to_units(0.1) == UNITS_PER_USD // 10
    assert usd_to_units("50") == 50 * UNITS_PER_USD
    assert sum(usd_to_units(0.1) for _ in range(10)) == usd_to_units(1)


def test_a_catalog_price_is_whole_units_per_token() -> None:
    assert price_units_per_token(0.02) == 20_000
    assert token_cost(1_000_000, 0.02) == usd_to_units("0.02")
    assert token_cost(3, 0.13) == 3 * 130_000


@given(st.integers(min_value=-(10**18), max_value=10**18))
def test_units_print_as_the_dollars_they_are(units: int) -> None:
    assert usd_to_units(units_to_usd_text(units)) == units


def test_units_print_without_trailing_zeros() -> None:
    assert units_to_usd_text(usd_to_units("49.9999985")) == "49.9999985"
    assert units_to_usd_text(0) == "0"


def test_a_bad_amount_is_refused() -> None:
    for bad in ("nan", "abc", "inf"):
        with pytest.raises(ValueError, match="dollars"):
            usd_to_units(bad)


def test_a_day_runs_from_midnight_to_midnight_utc() -> None:
    day = window("daily", at(2026, 11, 28, 23, 59, 59))
    assert (day.start, day.end) == (at(2026, 11, 28), at(2026, 11, 29))
    assert window("daily", at(2026, 11, 29)).start == at(2026, 11, 29)


def test_a_week_starts_on_monday_utc() -> None:
    saturday = window("weekly", at(2026, 11, 28, 12))
    assert (saturday.start, saturday.end) == (at(2026, 11, 23), at(2026, 11, 30))
    assert window("weekly", at(2026, 11, 30)).start == at(2026, 11, 30)  # Monday itself


def test_a_month_starts_on_its_first_day_and_december_rolls_into_january() -> None:
    november = window("monthly", at(2026, 11, 30, 23, 59))
    assert (november.start, november.end) == (at(2026, 11, 1), at(2026, 12, 1))
    december = window("monthly", at(2026, 12, 31, 23, 59, 59))
    assert december.end == at(2027, 1, 1)
    assert window("monthly", at(2028, 2, 29)).end == at(2028, 3, 1)  # leap day


def test_the_reset_is_rfc3339_utc() -> None:
    assert window("daily", at(2026, 11, 28, 5)).reset_rfc3339() == "2026-11-29T00:00:00Z"
    assert rfc3339(0) == "1970-01-01T00:00:00Z"


def test_an_account_moves_to_a_new_id_when_the_clock_crosses_its_boundary() -> None:
    clock = FakeClock(at(2026, 11, 30, 23, 59, 59))
    budget = Budget.of(5, "monthly")
    before = Account.current("key", "alice", budget, clock())
    clock.advance(1)
    after = Account.current("key", "alice", budget, clock())
    assert before.id != after.id
    assert after.window.start == at(2026, 12, 1)
    assert before.expires_at > after.window.start  # a late settlement still lands


def test_a_cost_must_fit_what_remains_of_every_budget() -> None:
    assert admits([90, 0], [100, 1000], 10)
    assert not admits([90, 0], [100, 1000], 11)  # strictly more than what remains
    assert not admits([0, 995], [100, 1000], 10)


def test_nothing_to_pay_passes_even_when_a_budget_is_spent() -> None:
    assert admits([150], [100], 0)
