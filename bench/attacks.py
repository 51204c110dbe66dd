"""`python -m bench.attacks [--rounds N]`: the trust attacks, counted, one table.

A real redis-server, the fake upstream turned hostile and the gateway, all on 127.0.0.1. Each
round of an upstream attack sends two new texts while the upstream lies, then the same texts
after it heals (must be MISS: nothing of the lie was cached) and again (must be a right HIT).
The tenant attack has tenant A's refused text and tenant B's two texts meet in one micro-batch
window; the storage attack corrupts a cached value three ways. Last, the memory the token-id
memo takes for 16,384 long texts. Every vector is checked against
the upstream's deterministic one, and every reported ``prompt_tokens`` against cl100k. Every
figure but the requests and statuses must be 0.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import logging
import os
import random
import string
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import redis

from gateway import codec
from gateway.settings import hash_key
from gateway.tokenmemo import TokenMemo
from gateway.tokens import Cl100k
from tests.support.background import BackgroundLoop
from tests.support.fake_upstream import FakeUpstream, encoding, vector_for
from tests.support.hostile import BROKEN_ANSWERS, USAGE_ONLY
from tests.support.redis_server import RedisServer
from tests.support.stack import Stack

MODEL = "text-embedding-3-small"
DIMS = 1536
A_KEY, B_KEY = "sk-attack-tenant-a", "sk-attack-tenant-b"
FAST = {"upstream": {"max_attempts": 2, "base_delay": 0, "max_delay": 0}}


@dataclass(slots=True)
class Tally:
    requests: int = 0
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    wrong_returned: int = 0
    wrong_cached: int = 0
    cross_tenant: int = 0
    wrong_usage: int = 0

    def check(self, response: httpx.Response, texts: Sequence[str]) -> None:
        self.requests += 1
        self.statuses[response.status_code] += 1
        if response.status_code == 200:
            self.wrong_returned += wrong(response, texts)
            tokens = sum(len(encoding().encode_ordinary(text)) for text in texts)
            self.wrong_usage += response.json()["usage"]["prompt_tokens"] != tokens


def wrong(response: httpx.Response, texts: Sequence[str]) -> int:
    got = [np.asarray(d["embedding"], dtype=np.float32) for d in response.json()["data"]]
    right = [vector_for(MODEL, text, DIMS) for text in texts]
    return sum(not np.array_equal(g, r) for g, r in zip(got, right, strict=True))


def embed(stack: Stack, texts: Sequence[str], key: str = "") -> httpx.Response:
    body = {"model": MODEL, "input": list(texts), "encoding_format": "float"}
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{stack.base_url}/embeddings", json=body, headers=headers, timeout=30)


def upstream_round(
    stack: Stack, tally: Tally, texts: list[str], lie: Callable[[], None], name: str
) -> None:
    """The lie, then the healed upstream: MISS (the lie left nothing), then a right HIT. A
    lie only about usage serves right vectors, which are cached: HIT, HIT."""
    lie()
    tally.check(embed(stack, texts), texts)
    stack.upstream.answer, stack.upstream.redirect_to = None, None
    stack.drain()
    for expected in ("HIT" if name in USAGE_ONLY else "MISS", "HIT"):
        response = embed(stack, texts)
        tally.check(response, texts)
        if response.headers.get("x-cache") != expected:
            tally.wrong_cached += len(texts)
        stack.drain()


def upstream_attack(loop: BackgroundLoop, name: str, rounds: int) -> Tally:
    stack, tally = Stack(loop, "", FAST), Tally()
    elsewhere = FakeUpstream()
    url = loop.run(elsewhere.start())

    def lie() -> None:
        if name == "redirect":
            stack.upstream.redirect_to = f"{url}/embeddings"
        else:
            stack.upstream.answer = BROKEN_ANSWERS[name]

    try:
        for i in range(rounds):
            texts = [f"{name} {i} first", f"{name} {i} second"]
            upstream_round(stack, tally, texts, lie, name)
        tally.wrong_returned += elsewhere.inputs_total  # texts re-posted to the other host
    finally:
        loop.run(elsewhere.stop())
        stack.close()
    return tally


async def tenant_round(stack: Stack, tally: Tally, i: int) -> None:
    a_text, b_texts = f"round {i} forbidden words of A", [f"round {i} B one", f"round {i} B two"]
    stack.upstream.set_delay(0.1)
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as client:

        async def post(key: str, texts: list[str]) -> httpx.Response:
            body = {"model": MODEL, "input": texts, "encoding_format": "float"}
            return await client.post(
                "/embeddings", json=body, headers={"Authorization": f"Bearer {key}"}
            )

        warming = asyncio.create_task(post(A_KEY, [f"round {i} in flight"]))
        while stack.upstream.in_flight == 0:
            await asyncio.sleep(0.002)
        stack.upstream.set_delay(0.0)
        a, b = await asyncio.gather(post(A_KEY, [a_text]), post(B_KEY, b_texts))
        await warming
    tally.check(b, b_texts)
    tally.requests += 1
    tally.statuses[a.status_code] += 1
    tally.cross_tenant += int(a_text in b.text or "B one" in a.text)


def tenant_attack(loop: BackgroundLoop, scope: str, rounds: int) -> Tally:
    keys = [{"name": "a", "sha256": hash_key(A_KEY)}, {"name": "b", "sha256": hash_key(B_KEY)}]
    overrides = {
        "auth": {"keys": keys, "cache_scope": scope},
        "fetch": {"batch_window_ms": 5000},
    }
    stack, tally = Stack(loop, "", overrides), Tally()
    stack.upstream.refuse_containing = "forbidden"
    try:
        for i in range(rounds):
            asyncio.run(tenant_round(stack, tally, i))
    finally:
        stack.close()
    return tally


def corruptions(value: bytes) -> list[bytes]:
    body_flip = bytearray(value)
    body_flip[-3] ^= 1
    tokens = value[:8] + struct.pack("<I", 4_000_000_000) + value[12:]
    nan = np.frombuffer(value[codec.HEADER_SIZE :], dtype="<f4").copy()
    nan[1] = np.nan
    return [bytes(body_flip), tokens, codec.pack(nan.tobytes(), DIMS, 2)]


def storage_attack(loop: BackgroundLoop, rounds: int) -> Tally:
    tally = Tally()
    with RedisServer() as server:
        stack = Stack(loop, server.url)
        try:
            with redis.Redis.from_url(server.url) as client:
                for i in range(rounds):
                    storage_round(stack, client, tally, [f"stored text {i}"])
        finally:
            stack.close()
    return tally


def storage_round(stack: Stack, client: Any, tally: Tally, texts: list[str]) -> None:
    tally.check(embed(stack, texts), texts)
    stack.drain()
    (key,) = client.keys("gw:e:*")  # one entry at a time: flushed after each round
    for bad in corruptions(client.get(key)):
        client.set(key, bad)
        response = embed(stack, texts)
        tally.check(response, texts)
        if (
            response.headers.get("x-cache") != "MISS"
            or response.json()["usage"]["prompt_tokens"] > 10
        ):
            tally.wrong_cached += 1
        stack.drain()
    client.flushdb()


def memo_growth(texts: int = 16_384, words: int = 290) -> tuple[int, float]:
    """Resident memory the token-id memo (default bound) adds while ``texts`` long texts
    (about 2,000 characters each) are admitted: (entries kept, MB)."""
    rng = random.Random(0)
    vocabulary = ["".join(rng.choices(string.ascii_lowercase, k=6)) for _ in range(5000)]
    memo, tokenizer = TokenMemo(), Cl100k()
    before = _resident_bytes()
    for _ in range(texts // 256):
        batch = [" ".join(rng.choices(vocabulary, k=words)) for _ in range(256)]
        view = memo.scoped("shared", tokenizer)
        view.ids_bytes_many(batch)
        view.remember()
    return len(memo), (_resident_bytes() - before) / 1e6


def _resident_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


ATTACKS = [*BROKEN_ANSWERS, "redirect"]


def row(name: str, tally: Tally) -> str:
    statuses = ", ".join(f"{n} x {s}" for s, n in sorted(tally.statuses.items()))
    return (
        f"| {name} | {tally.requests} | {statuses} | {tally.wrong_returned} "
        f"| {tally.wrong_cached} | {tally.wrong_usage} | {tally.cross_tenant} |"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    rounds = parser.parse_args(argv).rounds
    logging.disable(logging.WARNING)
    print(
        "| attack | requests | statuses | wrong vectors returned | wrong vectors cached "
        "| wrong usage | cross-tenant texts |"
    )
    print("|---|---|---|---|---|---|---|")
    with BackgroundLoop() as loop:
        for name in ATTACKS:
            print(row(f"upstream: {name}", upstream_attack(loop, name, rounds)), flush=True)
        for scope in ("key", "shared"):
            print(row(f"tenants ({scope} scope)", tenant_attack(loop, scope, rounds)), flush=True)
        print(row("stored values", storage_attack(loop, rounds)), flush=True)
    entries, grown = memo_growth()
    print(f"\ntoken-id memo after 16,384 long texts: {entries} entries kept, +{grown:.0f} MB RSS")


if __name__ == "__main__":
    main()
