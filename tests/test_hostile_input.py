"""Buggy and abusive clients get clean 4xx/503 envelopes, never a 5xx or a leaked secret."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.settings import hash_key
from tests.support.background import BackgroundLoop
from tests.support.stack import Stack, own_stack

SMALL = "text-embedding-3-small"
KEY = "sk-hostile-tenant-secret"


@pytest.fixture(scope="module")
def gateway() -> Iterator[Stack]:
    config = {
        "server": {"max_body_bytes": 64 * 1024, "body_timeout": 0.3},
        "auth": {"keys": [{"name": "tenant", "sha256": hash_key(KEY)}]},
    }
    with own_stack("", config) as stack:
        yield stack


def raw_post(stack: Stack, body: bytes) -> httpx.Response:
    headers = {"x-api-key": KEY, "content-type": "application/json"}
    return httpx.post(f"{stack.base_url}/embeddings", content=body, headers=headers, timeout=10)


def assert_envelope(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


@pytest.mark.parametrize(
    "body",
    [
        b'{"model":"text-embedding-3-small","input":"\\ud800"}',  # lone surrogate
        b'{"model":"text-embedding-3-small","input":"x","dimensions":NaN}',
        b'{"model":"text-embedding-3-small","input":[[1e400]]}',
        b'{"model":"text-embedding-3-small","input":[123456789012345678901234567890]}',
        b'{"model":"text-embedding-3-small","input":' + b"[" * 2000 + b"]" * 2000 + b"}",
        b"[]",
        b"",
        b"null",
        b'"just a string"',
    ],
    ids=["surrogate", "nan", "inf", "huge-int", "deep", "array", "empty", "null", "string"],
)
def test_malformed_bodies_get_a_400_envelope(gateway: Stack, body: bytes) -> None:
    assert_envelope(raw_post(gateway, body), 400)


def test_duplicate_keys_take_the_last_value(gateway: Stack) -> None:
    body = b'{"model":"nope","model":"text-embedding-3-small","input":"x"}'
    assert raw_post(gateway, body).status_code == 200


def test_a_body_over_the_limit_gets_413(gateway: Stack) -> None:
    body = b'{"model":"text-embedding-3-small","input":"' + b"a" * 70_000 + b'"}'
    error = assert_envelope(raw_post(gateway, body), 413)
    assert error["code"] == "request_too_large"


def test_too_many_characters_are_refused_before_tokenising(background: BackgroundLoop) -> None:
    stack = Stack(background, "")
    try:
        body = {"model": SMALL, "input": ["word " * 100_000] * 9}
        response = httpx.post(f"{stack.base_url}/embeddings", json=body, timeout=30)
        assert "characters of input" in assert_envelope(response, 400)["message"]
    finally:
        stack.close()


def test_a_stalled_body_gets_408_and_frees_the_connection(gateway: Stack) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"x-api-key: " + KEY.encode() + b'\r\nContent-Length: 100\r\n\r\n{"model"'
        )
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 408")


def test_the_gateway_answers_503_instead_of_queueing_past_its_cap(
    background: BackgroundLoop,
) -> None:
    stack = Stack(background, "", {"server": {"max_concurrent_requests": 1}})
    stack.upstream.set_delay(0.3)

    async def two_at_once() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=10) as client:
            first = asyncio.create_task(
                client.post("/embeddings", json={"model": SMALL, "input": "a"})
            )
            await asyncio.sleep(0.1)
            second = await client.post("/embeddings", json={"model": SMALL, "input": "b"})
            return [await first, second]

    try:
        first, second = asyncio.run(two_at_once())
        assert first.status_code == 200
        assert_envelope(second, 503)
        assert second.headers["retry-after"] == "1"
        assert httpx.get(f"{stack.url}/healthz").status_code == 200
    finally:
        stack.close()


def test_no_key_material_reaches_logs_or_errors(
    gateway: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "sk-wrong-but-secret-looking"
    response = httpx.post(
        f"{gateway.base_url}/embeddings",
        json={"model": SMALL, "input": "x"},
        headers={"Authorization": f"Bearer {wrong}"},
    )
    gateway.upstream.fail_next(20, status=500)
    failed = raw_post(gateway, b'{"model":"text-embedding-3-small","input":"secret text"}')
    logged = caplog.text + response.text + failed.text + str(dict(failed.headers))
    for secret in (wrong, KEY, "sk-upstream-openai-secret", "secret text"):
        assert secret not in logged
