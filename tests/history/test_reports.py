"""Usage and Costs pages in OpenAI's shape (validated against OpenAI's published schemas),
their query parameters, paging, and CSV rows equal to the JSON ones."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

import pytest
from multidict import MultiDict
from openapi_schema_validator import OAS30Validator

from gateway.budgets.money import token_cost, units_to_usd
from gateway.errors import InvalidRequest
from gateway.history import DAY, HOUR, Counts, Slot, Table
from gateway.history.query import COSTS, USAGE, Query, parse
from gateway.history.report import (
    COSTS_COLUMNS,
    USAGE_COLUMNS,
    cell,
    costs_page,
    rows,
    to_csv,
    usage_page,
)
from tests.history.openai_schemas import COSTS_RESULT, USAGE_EMBEDDINGS_RESULT, usage_response

DAY0 = 1_795_824_000  # 2026-11-28T00:00:00Z
H0 = DAY0 // HOUR
PRICES = {"small": 0.02, "large": 0.13}
NOW = DAY0 + 3 * DAY


def price(model: str) -> float:
    return PRICES.get(model, 0.0)


TABLE: Table = {
    Slot(H0 + 1, "alice", "red", "small"): Counts(2, 4, 1, 400, 300),
    Slot(H0 + 2, "alice", "red", "large"): Counts(1, 1, 0, 100, 100),
    Slot(H0 + 25, "bob", "", "small"): Counts(1, 2, 2, 50, 0),
    Slot(H0 + 49, "carol", "blue", "large"): Counts(3, 3, 0, 30, 30),
}


def query(spec: Any = USAGE, **params: str | list[str]) -> Query:
    pairs = MultiDict[str]()
    for name, value in {"start_time": str(DAY0), **params}.items():
        for item in value if isinstance(value, list) else [value]:
            pairs.add(name, item)
    return parse(pairs, spec, NOW)


def test_a_usage_page_matches_openais_schema() -> None:
    page = usage_page(TABLE, query(group_by=["model", "project_id"]), price)
    OAS30Validator(usage_response(USAGE_EMBEDDINGS_RESULT)).validate(page)


def test_a_costs_page_matches_openais_schema() -> None:
    page = costs_page(TABLE, query(COSTS, group_by=["project_id", "line_item"]), price)
    OAS30Validator(usage_response(COSTS_RESULT)).validate(page)


def test_daily_buckets_sum_their_hours_and_every_day_has_a_bucket() -> None:
    page = usage_page(TABLE, query(), price)
    assert [b["start_time"] for b in page["data"]] == [DAY0, DAY0 + DAY, DAY0 + 2 * DAY]
    first = page["data"][0]["results"]
    counted = [
        (r["input_tokens"], r["num_model_requests"], r["inputs"], r["cached_inputs"]) for r in first
    ]
    assert counted == [(500, 3, 5, 1)]
    saved = token_cost(100, 0.02)
    assert first[0]["saved_usd"] == units_to_usd(saved)


def test_group_by_splits_results_and_names_them() -> None:
    page = usage_page(TABLE, query(group_by="model,api_key_id"), price)
    first = page["data"][0]["results"]
    assert [(r["model"], r["api_key_id"], r["project_id"]) for r in first] == [
        ("large", "alice", None),
        ("small", "alice", None),
    ]


def test_filters_keep_only_what_was_asked_for() -> None:
    page = usage_page(TABLE, query(api_key_ids=["bob"]), price)
    assert [len(b["results"]) for b in page["data"]] == [0, 1, 0]


def test_a_teamless_key_is_in_no_project() -> None:
    page = usage_page(TABLE, query(group_by="project_id"), price)
    assert page["data"][1]["results"][0]["project_id"] is None


def test_costs_are_what_misses_cost_per_project_and_line_item() -> None:
    page = costs_page(TABLE, query(COSTS, group_by=["project_id", "line_item"]), price)
    first = page["data"][0]["results"]
    assert [(r["project_id"], r["line_item"], r["amount"]) for r in first] == [
        ("red", "large, input", {"value": units_to_usd(token_cost(100, 0.13)), "currency": "usd"}),
        ("red", "small, input", {"value": units_to_usd(token_cost(300, 0.02)), "currency": "usd"}),
    ]


REFUSALS: Table = {
    **TABLE,
    Slot(H0 + 1, "alice", "red", "small"): Counts(2, 4, 1, 400, 300, 1, 2),
    Slot(H0 + 3, "alice", "red", ""): Counts(rate_limited=4),
    Slot(H0 + 26, "bob", "", "small"): Counts(upstream_errors=1),
}


def test_usage_counts_rate_limited_and_upstream_errors_per_bucket() -> None:
    page = usage_page(REFUSALS, query(), price)
    counted = [
        [(r["rate_limited"], r["upstream_errors"]) for r in b["results"]] for b in page["data"]
    ]
    assert counted == [[(5, 2)], [(0, 1)], [(0, 0)]]
    OAS30Validator(usage_response(USAGE_EMBEDDINGS_RESULT)).validate(page)


def test_a_refusal_before_the_model_was_read_has_no_model() -> None:
    page = usage_page(REFUSALS, query(group_by="model"), price)
    by_model = {r["model"]: r for r in page["data"][0]["results"]}
    assert by_model[None]["rate_limited"] == 4 and by_model[None]["num_model_requests"] == 0
    narrowed = usage_page(REFUSALS, query(models=["small"]), price)
    assert narrowed["data"][0]["results"][0]["rate_limited"] == 1


def test_hours_with_only_refusals_have_no_cost_result() -> None:
    with_refusals = costs_page(REFUSALS, query(COSTS, group_by="line_item"), price)
    assert with_refusals == costs_page(TABLE, query(COSTS, group_by="line_item"), price)


def test_hourly_buckets_and_paging_with_next_page() -> None:
    first = usage_page(TABLE, query(bucket_width="1h", limit="2"), price)
    assert first["has_more"] and first["next_page"] == f"page_{DAY0 + 2 * HOUR}"
    second = usage_page(TABLE, query(bucket_width="1h", limit="2", page=first["next_page"]), price)
    assert second["data"][0]["start_time"] == DAY0 + 2 * HOUR
    assert second["data"][0]["results"][0]["input_tokens"] == 100


def test_the_last_page_says_there_is_no_more() -> None:
    page = usage_page(TABLE, query(limit="31"), price)
    assert page["has_more"] is False and page["next_page"] is None


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"start_time": "soon"}, "start_time"),
        ({"bucket_width": "1m"}, "bucket_width"),
        ({"group_by": "user_id"}, "group_by"),
        ({"limit": "0"}, "limit"),
        ({"limit": "32"}, "limit"),
        ({"page": "page_12"}, "page"),
        ({"end_time": str(DAY0)}, "end_time"),
    ],
)
def test_a_bad_parameter_is_an_openai_style_400(params: dict[str, str], param: str) -> None:
    with pytest.raises(InvalidRequest) as error:
        query(**params)
    assert error.value.param == param


def test_start_time_is_required() -> None:
    with pytest.raises(InvalidRequest, match="start_time"):
        parse(MultiDict(), USAGE, NOW)


def test_a_key_narrowed_to_itself_sees_nothing_else() -> None:
    narrowed = query(api_key_ids=["alice", "bob"]).only("api_key_id", frozenset({"bob"}))
    assert narrowed.filters["api_key_id"] == {"bob"}
    assert query().only("api_key_id", frozenset({"bob"})).filters["api_key_id"] == {"bob"}


def parsed_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def as_text(row: dict[str, Any]) -> dict[str, str]:
    return {k: cell(v) for k, v in row.items() if k != "object"}


@pytest.mark.parametrize(
    ("build", "spec", "columns", "group_by"),
    [
        (usage_page, USAGE, USAGE_COLUMNS, "model,api_key_id,project_id"),
        (costs_page, COSTS, COSTS_COLUMNS, "project_id,line_item"),
    ],
)
def test_csv_rows_equal_the_json_rows(
    build: Any, spec: Any, columns: tuple[str, ...], group_by: str
) -> None:
    page = build(TABLE, query(spec, group_by=group_by), price)
    expected = [as_text(row) for row in rows(page)]
    assert len(expected) == 4 and all(set(row) <= set(columns) for row in expected)
    assert parsed_csv(to_csv(page, columns)) == [
        {column: row.get(column, "") for column in columns} for row in expected
    ]


def test_csv_money_is_plain_decimals_equal_to_the_json_numbers() -> None:
    assert cell(2e-06) == "0.000002" and Decimal(cell(2e-06)) == Decimal(repr(2e-06))
    assert (cell(None), cell(7), cell(0.1)) == ("", "7", "0.1")
