"""What an admin call asks for, parsed from untrusted JSON into typed values (pure)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.cache_control import CONTROLS, Control
from gateway.errors import InvalidRequest
from gateway.settings import LimitSettings, SettingsError, parse_as

FIELDS = ("name", "team", "models", "limits", "cache_controls")
MAX_TEXT = 200
MAX_GRACE_SECONDS = 7 * 24 * 3600
MAX_PAGE = 100
DEFAULT_PAGE = 20


@dataclass(frozen=True, slots=True)
class KeyChanges:
    """None: leave as it is."""

    name: str | None = None
    team: str | None = None
    models: tuple[str, ...] | None = None
    limits: LimitSettings | None = None
    cache_controls: tuple[Control, ...] | None = None


def _object(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise InvalidRequest("The request body must be a JSON object.")
    return body


def _text(value: Any, param: str, *, empty_ok: bool) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT or not (empty_ok or value.strip()):
        raise InvalidRequest(
            f"'{param}' must be a{'' if empty_ok else ' non-empty'} string of at most "
            f"{MAX_TEXT} characters.",
            param=param,
        )
    return value.strip()


def _models(value: Any, known: Collection[str]) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise InvalidRequest("'models' must be a list of model names.", param="models")
    for model in value:
        if model not in known:
            raise InvalidRequest(f"The model `{model}` does not exist.", param="models")
    return tuple(dict.fromkeys(value))


def _limits(value: Any) -> LimitSettings:
    """JSON has numbers: unlike the config file, text is never read as one."""
    if isinstance(value, Mapping) and any(isinstance(v, str) for v in value.values()):
        raise InvalidRequest("Invalid limits: each limit must be a number or null.", param="limits")
    try:
        return parse_as(LimitSettings, value, "limits")
    except SettingsError as exc:
        raise InvalidRequest(f"Invalid limits: {exc}", param="limits") from None


def _controls(value: Any) -> tuple[Control, ...]:
    if not isinstance(value, list) or not all(c in CONTROLS for c in value):
        raise InvalidRequest(
            f"'cache_controls' must be a list of {', '.join(CONTROLS)}.", param="cache_controls"
        )
    return tuple(dict.fromkeys(value))


def parse_changes(body: Any, known_models: Collection[str], *, create: bool) -> KeyChanges:
    data = _object(body)
    for name in data:
        if name not in FIELDS:
            raise InvalidRequest(f"Unrecognized request argument supplied: {name}", param=name)
    if create and "name" not in data:
        raise InvalidRequest("Missing required parameter: 'name'.", param="name")
    return KeyChanges(
        name=_text(data["name"], "name", empty_ok=False) if "name" in data else None,
        team=_text(data["team"], "team", empty_ok=True) if "team" in data else None,
        models=_models(data["models"], known_models) if "models" in data else None,
        limits=_limits(data["limits"]) if "limits" in data else None,
        cache_controls=_controls(data["cache_controls"]) if "cache_controls" in data else None,
    )


def parse_grace(body: Any) -> float:
    data = _object(body if body is not None else {})
    grace = data.get("grace_seconds", 0)
    if isinstance(grace, bool) or not isinstance(grace, int | float):
        grace = -1
    if not 0 <= grace <= MAX_GRACE_SECONDS:
        raise InvalidRequest(
            f"'grace_seconds' must be a number from 0 to {MAX_GRACE_SECONDS}.",
            param="grace_seconds",
        )
    return float(grace)


def parse_page(query: Mapping[str, str]) -> tuple[str | None, int]:
    raw = query.get("limit", str(DEFAULT_PAGE))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise InvalidRequest(f"'limit' must be an integer from 1 to {MAX_PAGE}.", param="limit")
    return query.get("after") or None, int(raw)
