"""The /v1/usage body: per key (and, for the internal token, per team) usage with costs per
model: cost = billed tokens x price, savings = (tokens - billed tokens) x price (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gateway.catalog import Catalog
from gateway.usage import FIELDS, ZERO, Counts, Row, Table


def model_row(model: str, counts: Counts, catalog: Catalog) -> dict[str, Any]:
    entry = catalog.get(model)
    price = entry.price_per_million if entry is not None else 0.0
    saved = counts.tokens - counts.billed_tokens
    return {
        "model": model,
        **dict(zip(FIELDS, counts.values(), strict=True)),
        "cost_usd": counts.billed_tokens * price / 1_000_000,
        "saved_usd": saved * price / 1_000_000,
    }


def _by_model(rows: Iterable[tuple[Row, Counts]], catalog: Catalog) -> list[dict[str, Any]]:
    totals: dict[str, Counts] = {}
    for row, counts in rows:
        totals[row.model] = totals.get(row.model, ZERO) + counts
    return [model_row(model, counts, catalog) for model, counts in sorted(totals.items())]


def report(
    table: Table, catalog: Catalog, only_key: str | None, names: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Rows are keyed by key id; ``names`` gives each id its display name."""
    names = names or {}
    rows = [(row, counts) for row, counts in table.items() if only_key in (None, row.key)]
    owners = sorted(
        {(row.key, row.team) for row, _ in rows}, key=lambda o: (names.get(o[0], o[0]), o)
    )
    body: dict[str, Any] = {
        "object": "usage",
        "keys": [
            {
                "key": names.get(key, key),
                "key_id": key,
                "team": team,
                "models": _by_model(((r, c) for r, c in rows if (r.key, r.team) == owner), catalog),
            }
            for owner in owners
            for key, team in [owner]
        ],
    }
    if only_key is None:
        teams = sorted({row.team for row, _ in rows if row.team})
        body["teams"] = [
            {
                "team": team,
                "models": _by_model(((r, c) for r, c in rows if r.team == team), catalog),
            }
            for team in teams
        ]
    return body
