"""The access log: one JSON line per request with the same fields as before, written in batches
off the request's path, bounded, and never holding a secret or an input."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from gateway.accesslog import AccessLog, chunks
from gateway.app import ACCESS_LOG
from gateway.settings import hash_key
from tests.support.background import BackgroundLoop
from tests.support.stack import Stack

KEY = "sk-access-log-tenant-secret"
SECRET_INPUT = "a private sentence nobody else may read"


def read_lines(fd: int) -> list[bytes]:
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 1 << 20).splitlines()
    except BlockingIOError:
        return []


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read, write = os.pipe()
    yield read, write
    os.close(read)
    os.close(write)


def fields(line: bytes) -> dict[str, Any]:
    prefix, _, body = line.partition(b" INFO gateway.access ")
    assert prefix, line
    parsed: dict[str, Any] = orjson.loads(body)
    return parsed


async def test_a_line_is_written_once_flushed_with_the_log_prefix(pipe: tuple[int, int]) -> None:
    access = AccessLog(pipe[1], clock=lambda: 1_700_000_000.25)
    access.write("req_1", 0.0015, {"method": "POST", "status": 200})
    assert read_lines(pipe[0]) == []  # queued, not written on the request's path
    await access.close()
    (line,) = read_lines(pipe[0])
    assert line.split(b" ")[1].endswith(b",250")
    assert fields(line) == {
        "request_id": "req_1",
        "duration_ms": 1.5,
        "method": "POST",
        "status": 200,
    }


async def test_lines_beyond_the_bound_are_dropped_and_counted(pipe: tuple[int, int]) -> None:
    access = AccessLog(pipe[1], max_pending_bytes=250, clock=lambda: 1_700_000_000.0)  # two lines
    for index in range(5):
        access.write(f"req_{index}", 0.001, {"status": 200})
    await access.close()
    lines = [fields(line) for line in read_lines(pipe[0])]
    assert [line["request_id"] for line in lines[:-1]] == ["req_0", "req_1"]
    assert lines[-1] == {"dropped_lines": 3, "reason": "log output too slow"}


def test_batches_are_cut_at_line_boundaries_within_the_atomic_write_size() -> None:
    lines = [b"a" * 30 + b"\n", b"b" * 30 + b"\n", b"c" * 70 + b"\n", b"d" * 10 + b"\n"]
    pieces = chunks(lines, limit=64)
    assert pieces == [lines[0] + lines[1], lines[2], lines[3]]


@pytest.fixture
def gateway() -> Iterator[Stack]:
    config = {"auth": {"keys": [{"name": "tenant", "sha256": hash_key(KEY)}]}}
    with BackgroundLoop() as loop:
        stack = Stack(loop, "memory", config)
        yield stack
        stack.close()


def test_a_request_logs_its_fields_and_no_secret_or_input(
    gateway: Stack, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    response = httpx.post(
        f"{gateway.base_url}/embeddings",
        json={"model": "text-embedding-3-small", "input": SECRET_INPUT},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert response.status_code == 200
    gateway.loop.run(gateway.app[ACCESS_LOG].flush())
    logged = capfd.readouterr().err
    lines = [line for line in logged.splitlines() if " INFO gateway.access " in line]
    (line,) = [fields(line.encode()) for line in lines if "/embeddings" in line]
    assert line["request_id"] == response.headers["x-request-id"]
    assert line | {"duration_ms": 0, "upstream_ms": 0} == {
        "request_id": response.headers["x-request-id"],
        "duration_ms": 0,
        "key": "tenant",
        "model": "text-embedding-3-small",
        "inputs": 1,
        "hits": 0,
        "upstream_ms": 0,
        "method": "POST",
        "route": "/v1/embeddings",
        "status": 200,
    }
    assert KEY not in logged and SECRET_INPUT not in logged
