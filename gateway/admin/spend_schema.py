"""The cost-control part of /openapi.json (pure): usage and costs reports in the shape of
OpenAI's organization Usage and Costs APIs, and teams as projects with budgets."""

from __future__ import annotations

from typing import Any

from gateway.admin.budgets import MAX_USD
from gateway.admin.openapi_parts import JSON, Schema, closed, operation
from gateway.admin.openapi_parts import body as _body
from gateway.admin.openapi_parts import errors as _errors
from gateway.admin.openapi_parts import ref as _ref
from gateway.history.report import COSTS_COLUMNS, USAGE_COLUMNS

CALLERS: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]

_STRING: Schema = {"type": "string"}
_NULLABLE_STRING: Schema = {"type": ["string", "null"]}
_COUNT: Schema = {"type": "integer", "minimum": 0}
_USD_TEXT: Schema = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"}


def _closed(properties: Schema, optional: tuple[str, ...] = ()) -> Schema:
    return closed(properties, [name for name in properties if name not in optional])


def _page(result: str) -> Schema:
    bucket = _closed(
        {
            "object": {"const": "bucket"},
            "start_time": _COUNT,
            "end_time": _COUNT,
            "results": {"type": "array", "items": _ref(result)},
        }
    )
    return _closed(
        {
            "object": {"const": "page"},
            "data": {"type": "array", "items": bucket},
            "has_more": {"type": "boolean"},
            "next_page": _NULLABLE_STRING,
        }
    )


BUDGET = _closed(
    {
        "usd": {"type": "number", "minimum": 0, "maximum": MAX_USD},
        "period": {"enum": ["daily", "weekly", "monthly"]},
    },
    optional=("period",),
)
USAGE_OUT = _closed({"spent_usd": _USD_TEXT, "remaining_usd": _USD_TEXT, "resets_at": _STRING})
BUDGET_OUT = _closed({"usd": _USD_TEXT, "period": {"enum": ["daily", "weekly", "monthly"]}})

SCHEMAS: dict[str, Schema] = {
    "UsageEmbeddingsResult": _closed(
        {
            "object": {"const": "organization.usage.embeddings.result"},
            "input_tokens": _COUNT,
            "num_model_requests": _COUNT,
            "model": _NULLABLE_STRING,
            "api_key_id": _NULLABLE_STRING,
            "project_id": _NULLABLE_STRING,
            "user_id": {"type": "null"},
            "inputs": _COUNT,
            "cached_inputs": _COUNT,
            "saved_usd": {"type": "number", "minimum": 0},
            "rate_limited": _COUNT,
            "upstream_errors": _COUNT,
        }
    ),
    "CostsResult": _closed(
        {
            "object": {"const": "organization.costs.result"},
            "amount": _closed({"value": {"type": "number"}, "currency": {"const": "usd"}}),
            "line_item": _NULLABLE_STRING,
            "project_id": _NULLABLE_STRING,
            "api_key_id": _NULLABLE_STRING,
        }
    ),
    "UsageEmbeddingsPage": _page("UsageEmbeddingsResult"),
    "CostsPage": _page("CostsResult"),
    "Budget": BUDGET,
    "BudgetShown": BUDGET_OUT,
    "BudgetUsage": USAGE_OUT,
    "Project": _closed(
        {
            "object": {"const": "organization.project"},
            "id": _STRING,
            "name": _STRING,
            "created_at": _COUNT,
            "archived_at": {"type": ["integer", "null"]},
            "status": {"enum": ["active", "archived"]},
            "source": {"enum": ["config", "runtime"]},
            "budget": {"anyOf": [_ref("BudgetShown"), {"type": "null"}]},
            "budget_usage": {"anyOf": [_ref("BudgetUsage"), {"type": "null"}]},
        }
    ),
    "ProjectList": _closed(
        {
            "object": {"const": "list"},
            "data": {"type": "array", "items": _ref("Project")},
            "first_id": _NULLABLE_STRING,
            "last_id": _NULLABLE_STRING,
            "has_more": {"type": "boolean"},
        }
    ),
    "ProjectCreate": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "pattern": r"\S"},
            "id": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"},
            "budget": {"anyOf": [BUDGET, {"type": "null"}]},
        },
    },
    "ProjectUpdate": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "pattern": r"\S"},
            "budget": {"anyOf": [BUDGET, {"type": "null"}]},
        },
    },
}


def _query(name: str, schema: Schema, *, required: bool = False, array: bool = False) -> Schema:
    parameter: Schema = {"name": name, "in": "query", "required": required, "schema": schema}
    if array:
        parameter |= {"style": "form", "explode": True}
    return parameter


def _strings() -> Schema:
    return {"type": "array", "items": _STRING}


def _report_parameters(widths: list[str], groups: list[str], filters: list[str]) -> list[Schema]:
    return [
        _query("start_time", {"type": "integer", "minimum": 0, "maximum": 10**12}, required=True),
        _query("end_time", {"type": "integer", "minimum": 1, "maximum": 10**12}),
        _query("bucket_width", {"enum": widths}),
        _query("group_by", {"type": "array", "items": {"enum": groups}}, array=True),
        _query("limit", {"type": "integer", "minimum": 1, "maximum": 168}),
        _query("page", _STRING),
        _query("format", {"enum": ["json", "csv"]}),
        *(_query(name, _strings(), array=True) for name in filters),
    ]


def _answer(description: str, schema: str, csv_columns: tuple[str, ...] = ()) -> Schema:
    content: Schema = {JSON: {"schema": _ref(schema)}}
    if csv_columns:
        content["text/csv"] = {
            "schema": {"type": "string", "description": "Columns: " + ",".join(csv_columns)}
        }
    return {"description": description, "content": content}


def paths() -> Schema:
    project_id = {"name": "project_id", "in": "path", "required": True, "schema": _STRING}
    usage = _report_parameters(
        ["1d", "1h"],
        ["model", "api_key_id", "project_id"],
        ["models", "api_key_ids", "project_ids"],
    )
    costs = _report_parameters(
        ["1d"],
        ["project_id", "line_item", "api_key_id"],
        ["project_ids", "api_key_ids", "line_items"],
    )
    return {
        "/v1/organization/usage/embeddings": {
            "get": _operation(
                "usageEmbeddings",
                "Embeddings usage per time bucket (a key sees only itself)",
                _answer("A page of buckets", "UsageEmbeddingsPage", USAGE_COLUMNS),
                parameters=usage,
            )
        },
        "/v1/organization/costs": {
            "get": _operation(
                "usageCosts",
                "Upstream costs per day (a key sees only itself)",
                _answer("A page of buckets", "CostsPage", COSTS_COLUMNS),
                parameters=costs,
            )
        },
        "/v1/organization/projects": {
            "get": _operation(
                "listProjects",
                "Teams, as projects, with their budgets (internal token)",
                _answer("The projects", "ProjectList"),
                parameters=[
                    _query("after", _STRING),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 100}),
                ],
            ),
            "post": _operation(
                "createProject",
                "Create a team (internal token)",
                _answer("The project", "Project"),
                requestBody=_body("ProjectCreate"),
            ),
        },
        "/v1/organization/projects/{project_id}": {
            "get": _operation(
                "retrieveProject",
                "One team (internal token)",
                _answer("The project", "Project"),
                parameters=[project_id],
            ),
            "post": _operation(
                "modifyProject",
                "Rename a team or set its budget (internal token)",
                _answer("The project", "Project"),
                parameters=[project_id],
                requestBody=_body("ProjectUpdate"),
            ),
        },
    }


def _operation(operation_id: str, summary: str, answer: Schema, **extra: Any) -> Schema:
    responses = {"200": answer} | _errors(400, 401, 404, 503)
    return operation(operation_id, summary, responses, security=CALLERS, **extra)
