"""The pure core imports no I/O library: it stays small, fast and testable on plain data."""

from __future__ import annotations

import subprocess
import sys

PURE = [
    "gateway.protocol",
    "gateway.jsonscan",
    "gateway.tokenscan",
    "gateway.keys",
    "gateway.codec",
    "gateway.storage_formats",
    "gateway.batching",
    "gateway.catalog",
    "gateway.settings",
    "gateway.auth",
    "gateway.quota",
    "gateway.canonical",
    "gateway.ratelimit.bucket",
    "gateway.upstream.retry",
    "gateway.breaker",
    "gateway.usage",
    "gateway.usage.report",
    "gateway.apikeys",
    "gateway.apikeys.requests",
    "gateway.apikeys.views",
    "gateway.apikeys.admin",
    "gateway.budgets",
    "gateway.budgets.money",
    "gateway.budgets.period",
    "gateway.budgets.policies",
    "gateway.budgets.alerts",
    "gateway.history.query",
    "gateway.history.report",
    "gateway.admin.openapi_parts",
    "gateway.admin.schema",
    "gateway.admin.cache_schema",
    "gateway.admin.spend_schema",
]


def test_pure_modules_import_no_aiohttp_redis_or_prometheus() -> None:
    probe = (
        f"import sys; import {', '.join(PURE)}; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'aiohttp', 'redis', 'prometheus_client'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
