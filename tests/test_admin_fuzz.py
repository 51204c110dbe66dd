"""Fuzzing the admin API with the internal token, from /openapi.json: no 5xx, every error in
OpenAI's envelope, every answer as documented."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeAlias

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.support.stack import Stack, own_stack
from tests.test_schemathesis import CHECKS

Case: TypeAlias = schemathesis.Case[Any]
TOKEN = "fuzz-admin-token"


@pytest.fixture(scope="module")
def admin_live() -> Iterator[Stack]:
    with own_stack("", {"auth": {"internal_token": TOKEN}}) as stack:
        yield stack


@pytest.fixture(scope="module")
def admin_api(admin_live: Stack) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{admin_live.url}/openapi.json")


admin = schemathesis.pytest.from_fixture("admin_api").include(path_regex="^/v1/organization/")


@admin.parametrize()
@settings(
    max_examples=40,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_the_admin_api_answers_as_documented(case: Case) -> None:
    case.call_and_validate(checks=CHECKS, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
