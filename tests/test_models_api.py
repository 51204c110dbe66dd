"""GET /v1/models and /v1/models/{model}: OpenAI's model objects, filtered by the caller's key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from gateway.settings import hash_key
from tests.support.background import BackgroundLoop
from tests.support.stack import Stack

SMALL = "text-embedding-3-small"
SLASHED = ("BAAI/bge-m3", "Qwen/Qwen3-Embedding-0.6B", "netease-youdao/bce-embedding-base_v1")
KEYS = [
    {"name": "narrow", "sha256": hash_key("sk-narrow"), "models": [SMALL]},
    {"name": "wide", "sha256": hash_key("sk-wide")},
]


@pytest.fixture(scope="module")
def loop() -> Iterator[BackgroundLoop]:
    with BackgroundLoop() as background:
        yield background


@pytest.fixture(scope="module")
def open_gateway(loop: BackgroundLoop) -> Iterator[Stack]:
    stack = Stack(loop, "")
    yield stack
    stack.close()


@pytest.fixture(scope="module")
def keyed_gateway(loop: BackgroundLoop) -> Iterator[Stack]:
    stack = Stack(loop, "", {"auth": {"keys": KEYS}})
    yield stack
    stack.close()


def client(stack: Stack, key: str = "unused", prefix: str = "/v1") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{stack.url}{prefix}", api_key=key, max_retries=0)


def listed(stack: Stack, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.get(f"{stack.base_url}/models", headers=headers or {}, timeout=10)


@pytest.mark.parametrize("prefix", ["/v1", "/api/v1"])
def test_python_client_retrieves_every_listed_model(open_gateway: Stack, prefix: str) -> None:
    models = client(open_gateway, prefix=prefix)
    ids = [model.id for model in models.models.list()]
    assert set(SLASHED) <= set(ids)
    for model_id in ids:
        model = models.models.retrieve(model_id)
        assert (model.id, model.object) == (model_id, "model")


def test_retrieve_answers_the_same_object_as_the_list(open_gateway: Stack) -> None:
    listing = {item["id"]: item for item in listed(open_gateway).json()["data"]}
    one = httpx.get(f"{open_gateway.base_url}/models/BAAI/bge-m3", timeout=10).json()
    assert one == listing["BAAI/bge-m3"]
    assert list(one) == ["id", "object", "created", "owned_by"]


def test_an_unknown_model_is_openais_404_model_not_found(open_gateway: Stack) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        client(open_gateway).models.retrieve("no/such-model")
    assert raised.value.body == {
        "message": "The model `no/such-model` does not exist or you do not have access to it.",
        "type": "invalid_request_error",
        "param": None,
        "code": "model_not_found",
    }


def test_a_wrong_key_cannot_list_models(keyed_gateway: Stack) -> None:
    response = listed(keyed_gateway, {"Authorization": "Bearer sk-wrong"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_a_key_lists_only_the_models_it_may_use(keyed_gateway: Stack) -> None:
    ids = [model.id for model in client(keyed_gateway, "sk-narrow").models.list()]
    assert ids == [SMALL]


def test_a_key_without_an_allow_list_lists_every_model(keyed_gateway: Stack) -> None:
    everything = [model.id for model in client(keyed_gateway, "sk-wide").models.list()]
    assert len(everything) == len(keyed_gateway.settings.models)


def test_a_model_the_key_may_not_use_is_not_found_for_it(keyed_gateway: Stack) -> None:
    with pytest.raises(openai.NotFoundError):
        client(keyed_gateway, "sk-narrow").models.retrieve("BAAI/bge-m3")
    assert client(keyed_gateway, "sk-narrow").models.retrieve(SMALL).id == SMALL


@pytest.mark.parametrize("path", ["models", "embedding-models"])
def test_without_a_key_the_listing_stays_public(keyed_gateway: Stack, path: str) -> None:
    response = httpx.get(f"{keyed_gateway.url}/api/v1/{path}", timeout=10)
    data: list[Any] = response.json()["data"]
    assert (response.status_code, len(data)) == (200, len(keyed_gateway.settings.models))


def test_the_nanogpt_listing_is_filtered_by_the_key_too(keyed_gateway: Stack) -> None:
    headers = {"x-api-key": "sk-narrow"}
    response = httpx.get(f"{keyed_gateway.url}/api/v1/embedding-models", headers=headers)
    assert [item["id"] for item in response.json()["data"]] == [SMALL]
