"""Keys as the admin API shows them, in the style of OpenAI's Administration API (pure).
The secret appears only in the answer that created it (``value``), never again."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from gateway.apikeys import ApiKey
from gateway.errors import InvalidRequest

OBJECT = "organization.api_key"


def key_object(key: ApiKey, last_used_at: int | None, value: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "object": OBJECT,
        "id": key.id,
        "name": key.name,
        "team": key.team,
        "models": list(key.models),
        "cache_controls": list(key.cache_controls),
        "limits": {k: v for k, v in dataclasses.asdict(key.limits).items() if v is not None},
        "redacted_value": key.redacted_value,
        "created_at": int(key.created_at),
        "last_used_at": last_used_at,
        "source": key.source,
        "previous_value_expires_at": int(key.previous_until) if key.previous_sha256 else None,
    }
    if value is not None:
        body["value"] = value
    return body


def deleted_object(key: ApiKey) -> dict[str, Any]:
    return {"object": f"{OBJECT}.deleted", "id": key.id, "deleted": True}


def page(
    keys: Sequence[ApiKey], last_used: dict[str, int], after: str | None, limit: int
) -> dict[str, Any]:
    start = 0
    if after is not None:
        ids = [key.id for key in keys]
        if after not in ids:
            raise InvalidRequest(f"No API key with id '{after}' to list after.", param="after")
        start = ids.index(after) + 1
    chosen = keys[start : start + limit]
    data = [key_object(key, last_used.get(key.id)) for key in chosen]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": start + limit < len(keys),
    }
