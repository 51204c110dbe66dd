"""The admin API for keys on a live gateway: OpenAI's Administration API shapes, internal token
only, audit-logged without secrets, and keys that work (or stop working) at once."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.app import KEY_DIRECTORY
from gateway.settings import hash_key
from tests.support.background import BackgroundLoop
from tests.support.stack import Stack

TOKEN = "internal-admin-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
CONFIG_SECRET = "sk-config-key"
SMALL = "text-embedding-3-small"
OVERRIDES = {
    "auth": {
        "internal_token": TOKEN,
        "keys": [{"name": "ops", "sha256": hash_key(CONFIG_SECRET)}],
    }
}


@pytest.fixture
def gateway(background: BackgroundLoop, backend: str) -> Iterator[Stack]:
    stack = Stack(background, backend, OVERRIDES)
    yield stack
    stack.close()


def admin(stack: Stack, method: str, path: str = "", body: Any = None) -> httpx.Response:
    url = f"{stack.base_url}/organization/api_keys{path}"
    return httpx.request(method, url, json=body, headers=ADMIN, timeout=10)


def embed(stack: Stack, key: str, model: str = SMALL) -> int:
    body = {"model": model, "input": "hello"}
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.post(f"{stack.base_url}/embeddings", json=body, headers=headers).status_code


def test_create_shows_the_secret_once_and_the_key_works_at_once(gateway: Stack) -> None:
    created = admin(gateway, "POST", body={"name": "alice", "team": "red"})
    assert created.status_code == 201
    key = created.json()
    assert key["object"] == "organization.api_key" and key["value"].startswith("sk-gw-")
    assert key["redacted_value"].endswith(key["value"][-4:])
    assert embed(gateway, key["value"]) == 200
    fetched = admin(gateway, "GET", f"/{key['id']}").json()
    assert "value" not in fetched and fetched["name"] == "alice"


def test_last_use_shows_after_the_key_is_used(gateway: Stack) -> None:
    key = admin(gateway, "POST", body={"name": "alice"}).json()
    assert key["last_used_at"] is None
    embed(gateway, key["value"])
    gateway.loop.run(gateway.app[KEY_DIRECTORY].tick())
    assert isinstance(admin(gateway, "GET", f"/{key['id']}").json()["last_used_at"], int)


def test_list_pages_with_after_and_limit(gateway: Stack) -> None:
    ids = [admin(gateway, "POST", body={"name": f"k{i}"}).json()["id"] for i in range(3)]
    first = admin(gateway, "GET", "?limit=2").json()
    assert first["object"] == "list" and first["has_more"] is True
    assert first["data"][0]["source"] == "config" and first["data"][1]["id"] == ids[0]
    rest = admin(gateway, "GET", f"?limit=2&after={first['last_id']}").json()
    assert [k["id"] for k in rest["data"]] == ids[1:] and rest["has_more"] is False
    assert all("value" not in k for k in first["data"] + rest["data"])


def test_update_changes_which_models_a_key_may_use(gateway: Stack) -> None:
    key = admin(gateway, "POST", body={"name": "alice"}).json()
    changed = admin(gateway, "POST", f"/{key['id']}", {"models": ["text-embedding-3-large"]})
    assert changed.json()["models"] == ["text-embedding-3-large"]
    assert embed(gateway, key["value"]) == 403


def test_rotate_answers_a_new_secret_and_the_old_one_stops(gateway: Stack) -> None:
    key = admin(gateway, "POST", body={"name": "alice"}).json()
    rotated = admin(gateway, "POST", f"/{key['id']}/rotate", {}).json()
    assert rotated["value"] != key["value"] and rotated["id"] == key["id"]
    assert (embed(gateway, key["value"]), embed(gateway, rotated["value"])) == (401, 200)


def test_delete_revokes_the_key(gateway: Stack) -> None:
    key = admin(gateway, "POST", body={"name": "alice"}).json()
    deleted = admin(gateway, "DELETE", f"/{key['id']}").json()
    assert deleted == {"object": "organization.api_key.deleted", "id": key["id"], "deleted": True}
    assert embed(gateway, key["value"]) == 401
    assert admin(gateway, "GET", f"/{key['id']}").status_code == 404


def test_config_keys_are_read_only(gateway: Stack) -> None:
    config = admin(gateway, "GET").json()["data"][0]
    assert config["source"] == "config" and config["name"] == "ops"
    assert admin(gateway, "POST", f"/{config['id']}", {"name": "x"}).status_code == 400
    assert admin(gateway, "DELETE", f"/{config['id']}").status_code == 400
    assert embed(gateway, CONFIG_SECRET) == 200


@pytest.mark.parametrize("credential", ["", CONFIG_SECRET, "wrong"])
def test_only_the_internal_token_may_call_it(gateway: Stack, credential: str) -> None:
    headers = {"Authorization": f"Bearer {credential}"} if credential else {}
    url = f"{gateway.base_url}/organization/api_keys"
    response = httpx.post(url, json={"name": "x"}, headers=headers)
    assert response.status_code == 401
    assert list(response.json()) == ["error"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "name"),
        ({"name": " "}, "name"),
        ({"name": "a", "models": ["no-such-model"]}, "models"),
        ({"name": "a", "limits": {"requests_per_second": -1}}, "limits"),
        ({"name": "a", "limits": {"requests_per_second": "5"}}, "limits"),
        ({"name": "a", "colour": "red"}, "colour"),
    ],
)
def test_bad_bodies_get_400_naming_the_field(gateway: Stack, body: Any, param: str) -> None:
    response = admin(gateway, "POST", body=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_every_call_is_audit_logged_without_secrets(
    gateway: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="gateway.audit"):
        key = admin(gateway, "POST", body={"name": "alice"}).json()
        admin(gateway, "POST", f"/{key['id']}/rotate", {"grace_seconds": 5})
        httpx.get(f"{gateway.base_url}/organization/api_keys")  # refused: logged too
    lines = [r.getMessage() for r in caplog.records if r.name == "gateway.audit"]
    assert len(lines) == 3
    assert key["id"] in lines[0] and '"status":201' in lines[0] and '"status":401' in lines[2]
    assert not any(TOKEN in line or "sk-gw-" in line for line in lines)
