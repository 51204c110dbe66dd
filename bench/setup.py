"""Setting a benchmark up over plain HTTP and Redis: warming the cache, probing a scenario,
capturing the gateway's answers for the bare handler, checking auth, and Redis memory."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import redis

from bench import bare, scenarios, stack
from bench.report import Memory
from bench.scenarios import Scenario
from gateway import codec

_NOT_REPLAYED = {"date", "server", "content-length", "connection", "keep-alive"}
CACHE_WAIT_S = 15.0


def post(url: str, body: bytes, token: str | None) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with stack.urlopen(request, 60) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read()


def probe(url: str, scenario: Scenario, token: str | None) -> None:
    """One request as the scenario sends it: it must succeed, with the expected x-cache."""
    body = scenario.body.replace(scenarios.UNIQUE.encode(), f"probe-{time.time_ns()}".encode())
    status, headers, answer = post(url, body, token)
    cache = headers.get("x-cache", "")
    if status != 200 or cache != scenario.expect:
        raise RuntimeError(
            f"{scenario.key}: probe answered {status}, x-cache {cache!r} "
            f"(expected 200, {scenario.expect!r}): {answer[:300]!r}"
        )


def warm(url: str) -> None:
    """Put every hot input in the cache and wait until the gateway answers them as hits."""
    chunks = [list(scenarios.WARM[i : i + 2048]) for i in range(0, len(scenarios.WARM), 2048)]
    for chunk in chunks:
        status, _, answer = post(url, scenarios.body(chunk, "base64"), stack.INTERNAL_TOKEN)
        if status != 200:
            raise RuntimeError(f"warming the cache failed: {status} {answer[:300]!r}")
    deadline = time.monotonic() + CACHE_WAIT_S
    for chunk in chunks:
        while True:
            _, headers, _ = post(url, scenarios.body(chunk, "base64"), stack.INTERNAL_TOKEN)
            if headers.get("x-cache") == "HIT":
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the cache never answered the warmed inputs as hits")
            time.sleep(0.1)


def capture(url: str, directory: Path, chosen: Sequence[Scenario]) -> None:
    """The gateway's own answers to each all-hit scenario, for the bare handler to replay byte
    for byte (headers included, but those that describe the connection)."""
    for scenario in chosen:
        status, headers, answer = post(url, scenario.body, stack.INTERNAL_TOKEN)
        if status != 200 or headers.get("x-cache") != "HIT":
            raise RuntimeError(f"{scenario.key} answered {status}: {answer[:300]!r}")
        replayed = {k: v for k, v in headers.items() if k.lower() not in _NOT_REPLAYED}
        bare.save(directory, scenario.key, scenario.body, bare.Canned(answer, replayed))


def capture_single_hits(url: str, directory: Path) -> None:
    capture(url, directory, scenarios.single_hits("gateway"))


def check_auth_is_on(url: str) -> None:
    """Auth must be on: no key is refused, the configured bench key is accepted."""
    body = scenarios.body(scenarios.SINGLE, "base64")
    refused, _, _ = post(url, body, None)
    accepted, _, _ = post(url, body, stack.BENCH_KEY)
    if refused != 401 or accepted != 200:
        raise RuntimeError(f"auth is not on as configured: no key {refused}, bench key {accepted}")


def redis_memory(url: str, sample: int = 1000) -> Memory:
    """MEMORY USAGE over the gateway's 1536-dim cache entries (keys gw:e:v2:<hex>)."""
    value_bytes = codec.HEADER_SIZE + 4 * stack.DIMENSIONS
    client = redis.Redis.from_url(url)
    try:
        keys = []
        for key in client.scan_iter(match="gw:e:v2:*", count=1000):
            keys.append(key)
            if len(keys) >= sample:
                break
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.strlen(key)
            pipe.memory_usage(key)
        answers = pipe.execute()
    finally:
        client.close()
    usages = [int(u) for n, u in zip(answers[::2], answers[1::2], strict=True) if n == value_bytes]
    if not usages:
        raise RuntimeError("no 1536-dim cache entries found in Redis")
    return Memory(len(usages), sum(usages) / len(usages), max(usages), value_bytes)
