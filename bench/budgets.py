"""`python -m bench.budgets [--requests N]`: what a budget costs a cached request.

One in-process gateway per ledger backend (the embedded SQLite file, then Redis), in front of
the fake upstream; the same input is asked for N times by a key without a budget and by a key
with one (all hits: the budgeted key pays one ledger call per request for its headers).
Prints the median and p99 latency of each, in milliseconds."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

import httpx

from gateway.settings import hash_key
from tests.support.background import BackgroundLoop
from tests.support.redis_server import RedisServer
from tests.support.stack import Stack

PLAIN, BUDGETED = "sk-bench-plain", "sk-bench-budgeted"
CONFIG = {
    "auth": {
        "keys": [
            {"name": "plain", "sha256": hash_key(PLAIN)},
            {"name": "budgeted", "sha256": hash_key(BUDGETED), "budget": {"usd": 1000}},
        ]
    },
    "limits": {"per_ip": {"requests_per_second": 0}, "per_key": {"requests_per_second": 0}},
}


def latencies(client: httpx.Client, url: str, key: str, count: int) -> list[float]:
    body = {"model": "text-embedding-3-small", "input": "the same cached text"}
    headers = {"Authorization": f"Bearer {key}"}
    client.post(url, json=body, headers=headers).raise_for_status()  # the one miss
    taken = []
    for _ in range(count):
        started = time.perf_counter()
        client.post(url, json=body, headers=headers).raise_for_status()
        taken.append((time.perf_counter() - started) * 1000)
    return sorted(taken)


def row(backend: str, key: str, taken: Sequence[float]) -> str:
    p99 = taken[int(len(taken) * 0.99) - 1]
    return f"| {backend} | {key} | {statistics.median(taken):.3f} | {p99:.3f} |"


def measure(loop: BackgroundLoop, backend: str, redis_url: str, count: int) -> list[str]:
    stack = Stack(loop, redis_url, CONFIG)
    try:
        with httpx.Client(timeout=10) as client:
            url = f"{stack.base_url}/embeddings"
            return [row(backend, name, latencies(client, url, key, count))
                    for name, key in (("no budget", PLAIN), ("budget", BUDGETED))]  # fmt: skip
    finally:
        stack.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args(argv)
    lines = ["| ledger | key | median ms | p99 ms |", "|---|---|---|---|"]
    with BackgroundLoop() as loop, RedisServer() as redis_server:
        lines += measure(loop, "sqlite", "", args.requests)
        lines += measure(loop, "redis", redis_server.url, args.requests)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
