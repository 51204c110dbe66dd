"""An OpenAI-compatible provider (OpenAI, NanoGPT, ...): pure payload build/parse, one call.

Vectors are requested as base64, so no float is parsed as text on the way in. The provider's
key goes only into the Authorization header: no error, log line or response carries it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import logging
import math
from typing import Any

import aiohttp
import numpy as np
import orjson

from gateway.errors import (
    GatewayError,
    ProviderMisconfigured,
    ServiceUnavailable,
    UpstreamError,
    UpstreamTimeout,
    answered,
    upstream_client_error,
)
from gateway.settings import ProviderSettings
from gateway.upstream import Inputs, UpstreamBatch

_NOT_PASSED_THROUGH = {401, 403, 408, 409, 429}
_FLOAT32_MAX = float(np.finfo(np.float32).max)
# More than any one call can carry (2048 inputs of 8191 tokens); above it, usage is not trusted.
MAX_REPORTED_TOKENS = 1 << 25
LARGE_BODY_BYTES = 1024 * 1024

log = logging.getLogger("gateway.upstream")


def build_payload(model: str, inputs: Inputs, dimensions: int | None) -> bytes:
    body: dict[str, Any] = {"model": model, "input": list(inputs), "encoding_format": "base64"}
    if dimensions is not None:
        body["dimensions"] = dimensions
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


def parse_embeddings(body: bytes, expected: int, provider: str) -> UpstreamBatch:
    """The vectors of a success body, validated: one item per input, indexes a permutation of
    0..n-1 (or absent everywhere), every embedding a flat list of finite numbers or base64 of
    finite float32, all of one length. Anything else is an UpstreamError (a failed attempt)."""
    try:
        data = orjson.loads(body)
        items = _ordered(data["data"], expected)
        vectors = _matrix([item["embedding"] for item in items])
        tokens = _usage_tokens(data.get("usage"))
    except (
        orjson.JSONDecodeError,
        AttributeError,
        KeyError,
        TypeError,
        ValueError,
        binascii.Error,
    ):
        raise UpstreamError(f"upstream provider {provider} returned a malformed response") from None
    if vectors.shape[0] != expected:
        raise UpstreamError(
            f"upstream provider {provider} returned {vectors.shape[0]} vectors "
            f"for {expected} inputs"
        )
    if not np.isfinite(vectors).all():
        raise UpstreamError(f"upstream provider {provider} returned non-finite numbers")
    return UpstreamBatch(vectors, tokens)


def _ordered(items: Any, expected: int) -> list[dict[str, Any]]:
    """Items in input order: by ``index`` when every item has one (exactly 0..n-1), else as
    listed when none has one; a mix, a duplicate or a gap is malformed."""
    if not isinstance(items, list) or len(items) != expected:
        raise ValueError("one item per input expected")
    indexes = [item.get("index") for item in items]
    if all(index is None for index in indexes):
        return items
    if any(type(index) is not int for index in indexes) or sorted(indexes) != list(range(expected)):
        raise ValueError("indexes are not a permutation of the inputs")
    ordered: list[dict[str, Any]] = [{}] * expected
    for index, item in zip(indexes, items, strict=True):
        ordered[index] = item
    return ordered


def _matrix(embeddings: list[Any]) -> np.ndarray[Any, np.dtype[np.float32]]:
    if not embeddings:
        raise ValueError("no embeddings")
    if all(isinstance(e, str) for e in embeddings):
        raw = [base64.b64decode(e, validate=True) for e in embeddings]
        width = len(raw[0])
        if width == 0 or width % 4 or any(len(r) != width for r in raw):
            raise ValueError("base64 embeddings of unequal or partial length")
        return np.frombuffer(b"".join(raw), dtype="<f4").reshape(len(raw), width // 4)
    if not all(isinstance(e, list) for e in embeddings):
        raise ValueError("an embedding is neither a list nor base64")
    matrix = np.array(embeddings, dtype=np.float64)  # ragged lists raise ValueError
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise ValueError("embeddings are not flat lists of numbers")
    if np.abs(matrix).max() > _FLOAT32_MAX:  # finite here, infinite as float32
        raise ValueError("a number outside float32")
    return np.ascontiguousarray(matrix.astype("<f4"))


def _usage_tokens(usage: Any) -> int | None:
    """The reported ``prompt_tokens`` when it is a sane integer; None (local counts) otherwise."""
    tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    if type(tokens) is not int or not 0 <= tokens <= MAX_REPORTED_TOKENS:
        if tokens is not None:
            log.warning("upstream reported an implausible token count; using local counts")
        return None
    return tokens


def error_from_response(status: int, body: bytes, headers: Any, provider: str) -> GatewayError:
    message, param, code = _upstream_error_fields(body)
    if 400 <= status < 500 and status not in _NOT_PASSED_THROUGH:
        return upstream_client_error(status, message, param, code)
    retry_after = retry_after_from(headers)
    if status == 429:
        extra = {} if retry_after is None else {"retry-after": _header_seconds(retry_after)}
        message = f"upstream provider {provider} is rate limiting"
        return ServiceUnavailable(message, headers=extra, retry_after=retry_after)
    if status in (401, 403):
        return credentials_refused(provider, status)
    return UpstreamError(f"upstream provider {provider} answered {status}", retry_after=retry_after)


def _key_setting(provider: str) -> str:
    variable = f"{provider.upper()}_API_KEY"
    return f"providers.{provider}.api_key in the config ({variable} in the shipped config.yaml)"


def missing_key(provider: str) -> ProviderMisconfigured:
    return ProviderMisconfigured(
        f"upstream provider {provider} has no API key configured: set {_key_setting(provider)}"
    )


def credentials_refused(provider: str, status: int) -> ProviderMisconfigured:
    return ProviderMisconfigured(
        f"upstream provider {provider} refused the gateway's API key ({status}): "
        f"check {_key_setting(provider)}"
    )


def _upstream_error_fields(body: bytes) -> tuple[str, str | None, str | None]:
    try:
        error = orjson.loads(body)["error"]
        return str(error["message"]), error.get("param"), error.get("code")
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return "the upstream provider rejected the request", None, None


def retry_after_from(headers: Any) -> float | None:
    """Seconds the upstream asked us to wait: ``retry-after-ms`` first, then ``retry-after``
    (as seconds; an HTTP date is ignored). None when it sent neither, or nothing usable."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = _non_negative(headers.get(name))
        if value is not None:
            return value * scale
    return None


def _non_negative(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _header_seconds(seconds: float) -> str:
    """A client-facing ``retry-after``: whole seconds, 1 to 60."""
    return str(max(1, min(60, math.ceil(seconds))))


class OpenAIProvider:
    def __init__(self, name: str, settings: ProviderSettings) -> None:
        self.name = name
        self.max_batch = settings.max_batch
        self.max_tokens_per_request = settings.max_tokens_per_request
        self._settings = settings
        self._url = settings.base_url.rstrip("/") + "/embeddings"
        self._headers = {"Content-Type": "application/json"}
        if settings.api_key:
            self._headers["Authorization"] = f"Bearer {settings.api_key}"
        self._semaphore = asyncio.Semaphore(settings.max_concurrency)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=self._settings.connect_timeout,
            sock_read=self._settings.read_timeout,
        )
        connector = aiohttp.TCPConnector(limit=self._settings.max_concurrency)
        self._session = aiohttp.ClientSession(timeout=timeout, connector=connector)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def embed(self, model: str, inputs: Inputs, dimensions: int | None) -> UpstreamBatch:
        if self._settings.requires_api_key and not self._settings.api_key:
            raise answered(missing_key(self.name), "no_key")
        payload = build_payload(model, inputs, dimensions)
        async with self._semaphore:
            status, body, headers = await self._post(payload)
        if status in (401, 403) and not self._settings.api_key:
            raise answered(missing_key(self.name), str(status))
        if status != 200:
            raise answered(error_from_response(status, body, headers, self.name), str(status))
        try:
            return parse_embeddings(body, len(inputs), self.name)
        except GatewayError as error:
            raise answered(error, "invalid") from None

    async def _post(self, payload: bytes) -> tuple[int, bytes, Any]:
        assert self._session is not None, "provider used before start()"
        # aiohttp writes a bytes body in one go and warns past 1 MiB; a stream goes in pieces.
        data = io.BytesIO(payload) if len(payload) > LARGE_BODY_BYTES else payload
        try:
            async with self._session.post(
                self._url, data=data, headers=self._headers, allow_redirects=False
            ) as resp:
                return resp.status, await resp.read(), resp.headers
        except TimeoutError:
            timeout = UpstreamTimeout(f"upstream provider {self.name} timed out")
            raise answered(timeout, "timeout") from None
        except aiohttp.ClientError:
            unreachable = UpstreamError(f"could not reach upstream provider {self.name}")
            raise answered(unreachable, "unreachable") from None
