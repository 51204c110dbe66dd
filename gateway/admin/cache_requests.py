"""The cache administration's request bodies and answers (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gateway.cache import Contents, ModelEntries
from gateway.catalog import Model
from gateway.errors import InvalidRequest

OBJECT = "organization.cache.model"
MAX_SCOPES = 100
SCOPE = re.compile(r"shared|(team|key):[^\s]{1,200}")


def scopes(body: Mapping[str, Any]) -> list[str]:
    """The scopes a delete names: "shared", "team:<team>", "key:<key id>" (default shared)."""
    raw = body.get("scopes", ["shared"])
    if (
        not isinstance(raw, list)
        or not 1 <= len(raw) <= MAX_SCOPES
        or not all(isinstance(s, str) and SCOPE.fullmatch(s) for s in raw)
    ):
        raise InvalidRequest(
            f'\'scopes\' must be a list of 1 to {MAX_SCOPES} of "shared", "team:<team>" '
            'or "key:<key id>".',
            param="scopes",
        )
    return list(dict.fromkeys(raw))


def model_view(
    model: Model,
    stored: ModelEntries | None,
    contents: Contents,
    counts: Mapping[str, float],
) -> dict[str, Any]:
    hits, misses = int(counts.get("hit", 0)), int(counts.get("miss", 0))
    stored = stored or ModelEntries(0, 0)
    return {
        "object": OBJECT,
        "id": model.name,
        "model": model.name,
        "entries": stored.entries,
        "bytes": stored.bytes,
        "estimated": contents.estimated,
        "oldest_entry_age_seconds": _age(stored.oldest_age_seconds),
        "hits": hits,
        "misses": misses,
        "hit_ratio": round(hits / (hits + misses), 6) if hits + misses else None,
    }


def _age(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds)


def listing(data: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": False,
    }
