"""Pages of time buckets in the shape of OpenAI's organization Usage and Costs APIs, and the
same rows as CSV (pure). Money is summed in exact integer units and turned into dollars last.

A usage result's `input_tokens` counts every token served (hits included), `num_model_requests`
the requests served; `inputs`, `cached_inputs`, `saved_usd`, `rate_limited` (requests refused
with a 429) and `upstream_errors` (requests failed because the upstream did) are this gateway's
additions. A refusal before the model was read has the model null. A cost result's `amount` is
what misses cost upstream at the catalog price; hours with only refusals cost nothing and have
no cost result."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from gateway.budgets.money import token_cost, units_to_usd
from gateway.history import HOUR, ZERO, Counts, Slot, Table
from gateway.history.query import PAGE_PREFIX, Query

Price = Callable[[str], float]  # model -> USD per 1M tokens
Group = tuple[str | None, ...]

USAGE_COLUMNS = (
    "start_time",
    "end_time",
    "model",
    "api_key_id",
    "project_id",
    "user_id",
    "input_tokens",
    "num_model_requests",
    "inputs",
    "cached_inputs",
    "saved_usd",
    "rate_limited",
    "upstream_errors",
)
COSTS_COLUMNS = (
    "start_time",
    "end_time",
    "project_id",
    "api_key_id",
    "line_item",
    "amount_value",
    "amount_currency",
)


def line_item(model: str) -> str:
    return f"{model}, input"


def _values(slot: Slot) -> dict[str, str | None]:
    return {
        "model": slot.model or None,  # refused before the model was read
        "api_key_id": slot.key,
        "project_id": slot.team or None,  # a key without a team is in no project
        "line_item": line_item(slot.model),
    }


def _order(group: Group) -> tuple[str, ...]:
    return tuple(value or "" for value in group)


def _kept(values: Mapping[str, str | None], query: Query) -> bool:
    return all(values[field] in allowed for field, allowed in query.filters.items())


def _buckets(query: Query) -> tuple[list[int], bool]:
    starts = range(query.page, query.end, query.width)  # lazy: a wide range costs nothing
    return list(starts[: query.limit]), len(starts) > query.limit


def _grouped(
    table: Table, query: Query, starts: list[int]
) -> dict[int, dict[Group, dict[str, Counts]]]:
    """bucket start -> group -> model -> counts, for the slots this page shows."""
    grouped: dict[int, dict[Group, dict[str, Counts]]] = {start: {} for start in starts}
    first, end = starts[0], starts[-1] + query.width
    for slot, counts in table.items():
        moment = slot.hour * HOUR
        values = _values(slot)
        if not first <= moment < end or not _kept(values, query):
            continue
        bucket = grouped[first + (moment - first) // query.width * query.width]
        group = tuple(values[field] for field in query.group_by)
        models = bucket.setdefault(group, {})
        models[slot.model] = models.get(slot.model, ZERO) + counts
    return grouped


def _page(
    table: Table, query: Query, result: Callable[[Group, Mapping[str, Counts]], dict[str, Any]]
) -> dict[str, Any]:
    starts, has_more = _buckets(query)
    grouped = _grouped(table, query, starts)
    data = [
        {
            "object": "bucket",
            "start_time": start,
            "end_time": start + query.width,
            "results": [
                result(group, grouped[start][group]) for group in sorted(grouped[start], key=_order)
            ],
        }
        for start in starts
    ]
    next_start = starts[-1] + query.width
    return {
        "object": "page",
        "data": data,
        "has_more": has_more,
        "next_page": f"{PAGE_PREFIX}{next_start}" if has_more else None,
    }


def _named(query: Query, group: Group) -> dict[str, str | None]:
    return dict(zip(query.group_by, group, strict=True))


def usage_page(table: Table, query: Query, price: Price) -> dict[str, Any]:
    def result(group: Group, models: Mapping[str, Counts]) -> dict[str, Any]:
        total = sum(models.values(), ZERO)
        saved = sum(token_cost(c.tokens - c.billed_tokens, price(m)) for m, c in models.items())
        named = _named(query, group)
        return {
            "object": "organization.usage.embeddings.result",
            "input_tokens": total.tokens,
            "num_model_requests": total.requests,
            "model": named.get("model"),
            "api_key_id": named.get("api_key_id"),
            "project_id": named.get("project_id"),
            "user_id": None,
            "inputs": total.inputs,
            "cached_inputs": total.cached_inputs,
            "saved_usd": units_to_usd(saved),
            "rate_limited": total.rate_limited,
            "upstream_errors": total.upstream_errors,
        }

    return _page(table, query, result)


def costs_page(table: Table, query: Query, price: Price) -> dict[str, Any]:
    served = {slot: counts for slot, counts in table.items() if counts.requests}

    def result(group: Group, models: Mapping[str, Counts]) -> dict[str, Any]:
        spent = sum(token_cost(c.billed_tokens, price(m)) for m, c in models.items())
        named = _named(query, group)
        return {
            "object": "organization.costs.result",
            "amount": {"value": units_to_usd(spent), "currency": "usd"},
            "line_item": named.get("line_item"),
            "project_id": named.get("project_id"),
            "api_key_id": named.get("api_key_id"),
        }

    return _page(served, query, result)


def _flat(bucket: Mapping[str, Any], result: Mapping[str, Any]) -> dict[str, Any]:
    row = {"start_time": bucket["start_time"], "end_time": bucket["end_time"], **result}
    amount = row.pop("amount", None)
    if amount is not None:
        row["amount_value"], row["amount_currency"] = amount["value"], amount["currency"]
    return row


def rows(page: Mapping[str, Any]) -> Iterable[dict[str, Any]]:
    """One flat row per result of every bucket: what the CSV holds."""
    for bucket in page["data"]:
        for result in bucket["results"]:
            yield _flat(bucket, result)


def cell(value: Any) -> str:
    """Spreadsheets get plain decimals: 2e-06 (JSON's shortest form) is written 0.000002."""
    if value is None:
        return ""
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f")
    return str(value)


def to_csv(page: Mapping[str, Any], columns: tuple[str, ...]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows(page):
        writer.writerow({k: cell(v) for k, v in row.items()})
    return out.getvalue()
