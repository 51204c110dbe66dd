"""Query parameters of the organization Usage and Costs endpoints, parsed and checked (pure).

Lists arrive as repeated parameters (`group_by=model&group_by=project_id`), with brackets
(`group_by[]=model`, as OpenAI's SDKs send them) or comma-separated; all three are accepted."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from gateway.errors import InvalidRequest
from gateway.history import DAY, HOUR

PAGE_PREFIX = "page_"


class Params(Protocol):
    def getall(self, key: str, default: list[str]) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class Spec:
    widths: Mapping[str, tuple[int, int, int]]  # name -> (seconds, default limit, max limit)
    groups: frozenset[str]
    filters: Mapping[str, str]  # query parameter -> the result field it filters


USAGE = Spec(
    widths={"1d": (DAY, 7, 31), "1h": (HOUR, 24, 168)},
    groups=frozenset({"model", "api_key_id", "project_id"}),
    filters={"models": "model", "api_key_ids": "api_key_id", "project_ids": "project_id"},
)
COSTS = Spec(
    widths={"1d": (DAY, 7, 180)},
    groups=frozenset({"project_id", "line_item", "api_key_id"}),
    filters={"project_ids": "project_id", "api_key_ids": "api_key_id", "line_items": "line_item"},
)


@dataclass(frozen=True, slots=True)
class Query:
    start: int  # the first bucket's start, aligned to the width (Unix seconds)
    end: int  # exclusive
    width: int
    group_by: tuple[str, ...]
    limit: int
    page: int  # the first bucket of this page
    filters: Mapping[str, frozenset[str]]

    @property
    def page_end(self) -> int:
        """Where this page's last bucket ends: only these hours need reading."""
        return min(self.end, self.page + self.limit * self.width)

    def only(self, field: str, values: frozenset[str]) -> Query:
        """The same query narrowed to `values` of `field` (a key sees only its own usage)."""
        narrowed = values & self.filters[field] if field in self.filters else values
        return Query(
            self.start,
            self.end,
            self.width,
            self.group_by,
            self.limit,
            self.page,
            {**self.filters, field: narrowed},
        )


def parse(params: Params, spec: Spec, now: float) -> Query:
    width, default_limit, max_limit = _width(params, spec)
    start = _time(params, "start_time", required=True) // width * width
    end = _time(params, "end_time", required=False) or -(-int(now) // width) * width
    if end <= start:
        raise InvalidRequest("'end_time' must be after 'start_time'.", param="end_time")
    return Query(
        start=start,
        end=end,
        width=width,
        group_by=_group_by(params, spec),
        limit=_limit(params, default_limit, max_limit),
        page=_page(params, start, end, width),
        filters=_filters(params, spec),
    )


def _list(params: Params, name: str) -> list[str]:
    raw = params.getall(name, []) + params.getall(f"{name}[]", [])
    return [item.strip() for value in raw for item in value.split(",") if item.strip()]


def _one(params: Params, name: str) -> str | None:
    values = params.getall(name, [])
    return values[-1] if values else None


def _integer(params: Params, name: str) -> int | None:
    raw = _one(params, name)
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 12:
        raise InvalidRequest(f"Invalid '{name}': expected a non-negative integer.", param=name)
    return int(raw)


def _time(params: Params, name: str, *, required: bool) -> int:
    value = _integer(params, name)
    if value is None and required:
        raise InvalidRequest(f"Missing required parameter: '{name}'.", param=name)
    return value or 0


def _width(params: Params, spec: Spec) -> tuple[int, int, int]:
    name = _one(params, "bucket_width") or "1d"
    if name not in spec.widths:
        choices = ", ".join(f"'{w}'" for w in spec.widths)
        raise InvalidRequest(
            f"Invalid 'bucket_width': '{name}'. Supported values are: {choices}.",
            param="bucket_width",
        )
    return spec.widths[name]


def _group_by(params: Params, spec: Spec) -> tuple[str, ...]:
    fields = _list(params, "group_by")
    for field in fields:
        if field not in spec.groups:
            choices = ", ".join(f"'{g}'" for g in sorted(spec.groups))
            raise InvalidRequest(
                f"Invalid 'group_by': '{field}'. Supported values are: {choices}.",
                param="group_by",
            )
    return tuple(dict.fromkeys(fields))


def _limit(params: Params, default: int, maximum: int) -> int:
    limit = _integer(params, "limit")
    if limit is None:
        return default
    if not 1 <= limit <= maximum:
        raise InvalidRequest(f"Invalid 'limit': must be between 1 and {maximum}.", param="limit")
    return limit


def _page(params: Params, start: int, end: int, width: int) -> int:
    cursor = _one(params, "page")
    if cursor is None:
        return start
    raw = cursor.removeprefix(PAGE_PREFIX)
    if cursor == raw or not raw.isdigit() or not start <= int(raw) < end or int(raw) % width:
        raise InvalidRequest("Invalid 'page': not a cursor of this query.", param="page")
    return int(raw)


def _filters(params: Params, spec: Spec) -> dict[str, frozenset[str]]:
    return {
        field: frozenset(values)
        for name, field in spec.filters.items()
        if (values := _list(params, name))
    }
