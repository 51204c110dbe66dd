"""An OpenAI-compatible provider (OpenAI, NanoGPT, ...): pure payload build/parse, one call.

Vectors are requested as base64, so no float is parsed as text on the way in. The provider's
key goes only into the Authorization header: no error, log line or response carries it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
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
    upstream_client_error,
)
from gateway.settings import ProviderSettings
from gateway.upstream import Inputs, UpstreamBatch

_NOT_PASSED_THROUGH = {401, 403, 408, 409, 429}


def build_payload(model: str, inputs: Inputs, dimensions: int | None) -> bytes:
    body: dict[str, Any] = {"model": model, "input": list(inputs), "encoding_format": "base64"}
    if dimensions is not None:
        body["dimensions"] = dimensions
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


def parse_embeddings(body: bytes, expected: int, provider: str) -> UpstreamBatch:
    try:
        data = orjson.loads(body)
        items = sorted(data["data"], key=lambda item: item["index"])
        vectors = _matrix([item["embedding"] for item in items])
        usage = data.get("usage") or {}
        tokens = usage.get("prompt_tokens")
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, binascii.Error):
        raise UpstreamError(f"upstream provider {provider} returned a malformed response") from None
    if vectors.shape[0] != expected:
        raise UpstreamError(
            f"upstream provider {provider} returned {vectors.shape[0]} vectors "
            f"for {expected} inputs"
        )
    return UpstreamBatch(vectors, tokens if isinstance(tokens, int) else None)


def _matrix(embeddings: list[Any]) -> np.ndarray[Any, np.dtype[np.float32]]:
    if all(isinstance(e, str) for e in embeddings):
        raw = b"".join(base64.b64decode(e, validate=True) for e in embeddings)
        return np.frombuffer(raw, dtype="<f4").reshape(len(embeddings), -1)
    return np.ascontiguousarray(np.array(embeddings, dtype="<f4"))


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
            raise missing_key(self.name)
        payload = build_payload(model, inputs, dimensions)
        async with self._semaphore:
            status, body, headers = await self._post(payload)
        if status in (401, 403) and not self._settings.api_key:
            raise missing_key(self.name)
        if status != 200:
            raise error_from_response(status, body, headers, self.name)
        return parse_embeddings(body, len(inputs), self.name)

    async def _post(self, payload: bytes) -> tuple[int, bytes, Any]:
        assert self._session is not None, "provider used before start()"
        try:
            async with self._session.post(self._url, data=payload, headers=self._headers) as resp:
                return resp.status, await resp.read(), resp.headers
        except TimeoutError:
            raise UpstreamTimeout(f"upstream provider {self.name} timed out") from None
        except aiohttp.ClientError:
            raise UpstreamError(f"could not reach upstream provider {self.name}") from None
