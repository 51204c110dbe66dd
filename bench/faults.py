"""`python -m bench.faults [--seconds N] [--rate R]`: the gateway under faults, one table.

A real redis-server, the fake upstream (in-process, so faults can be scripted) and the gateway
(in-process, one fresh instance per phase), all on 127.0.0.1. Each phase drives a fixed request
rate (open loop) of small batches mixing repeated and new texts, and checks every returned
vector against the fake upstream's deterministic one. Phases:

    redis     Redis killed a third of the way in, restarted at two thirds
    errors    the upstream answers 30% of calls with 500 or 429
    hangs     some upstream calls never answer (deadline 1 s; an attempt gets at most half)
    hangs+rt  the same, with a per-call read timeout (0.3 s) the router can retry after

Wrong vectors must be 0. Failed requests are listed by status; "conn" is a client-side error.
Then the abuse phases of bench/abuse.py (one tenant attacks another; Redis stalls or fills up);
`--only faults|abuse` runs one set.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import logging
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import orjson
from prometheus_client.parser import text_string_to_metric_families

from bench.stack import upstream_only_config
from gateway.app import build_app
from gateway.settings import Settings, parse
from tests.support.background import BackgroundLoop
from tests.support.fake_upstream import FakeUpstream, Vector, vector_for
from tests.support.redis_server import RedisServer

CONFIG = Path(__file__).resolve().parents[1] / "config.yaml"
HOST = "127.0.0.1"
MODEL = "text-embedding-3-small"
NATIVE_DIMS = 1536
REDUCED_DIMS = 256
POOL = 40  # texts every phase repeats (cache hits once seen)
NEW_PER_REQUEST = 2
REPEATED_PER_REQUEST = 2
DEADLINE = 1.0  # upstream.deadline, seconds
HANG_EVERY = 0.5  # seconds between scripted hangs in the hang phases
GRACE = 10.0  # seconds a phase waits for its last answers

Event = tuple[float, Callable[[], None]]  # (seconds into the phase, blocking action)


# ---------------------------------------------------------------- configuration


def gateway_raw(upstream_url: str, redis_url: str) -> dict[str, Any]:
    """config.yaml, minus in-process models, pointed at the bench's upstream and Redis."""
    raw = upstream_only_config(upstream_url, redis_url, "sk-faults-upstream")
    raw["upstream"] |= {"deadline": DEADLINE, "base_delay": 0.02, "max_delay": 0.2}
    return raw


def gateway_settings(upstream_url: str, redis_url: str, read_timeout: float | None) -> Settings:
    raw = gateway_raw(upstream_url, redis_url)
    if read_timeout is not None:
        for spec in raw["providers"].values():
            spec["read_timeout"] = read_timeout
    settings = parse(raw)
    for name, provider in settings.providers.items():
        if not provider.base_url.startswith(f"http://{HOST}:"):
            raise RuntimeError(f"provider {name} would leave loopback: {provider.base_url}")
    return settings


# ---------------------------------------------------------------- requests and checks


@dataclass
class Tally:
    sent: int = 0
    ok: int = 0
    failed: collections.Counter[str] = field(default_factory=collections.Counter)
    wrong_vectors: int = 0
    latencies: list[float] = field(default_factory=list)
    messages: dict[str, str] = field(default_factory=dict)  # the first error text per status


@dataclass(frozen=True, slots=True)
class Planned:
    body: bytes
    texts: tuple[str, ...]
    dimensions: int | None


def plan(phase: str, index: int) -> Planned:
    """Request ``index``: repeated pool texts plus new ones; every 5th asks for fewer dims."""
    repeated = [f"pool text {(index * 7 + k) % POOL}" for k in range(REPEATED_PER_REQUEST)]
    new = [f"{phase} request {index} text {k}" for k in range(NEW_PER_REQUEST)]
    texts = (*repeated, *new)
    body: dict[str, Any] = {"model": MODEL, "input": list(texts)}
    body["encoding_format"] = "base64" if index % 2 else "float"
    dimensions = REDUCED_DIMS if index % 5 == 0 else None
    if dimensions is not None:
        body["dimensions"] = dimensions
    return Planned(orjson.dumps(body), texts, dimensions)


def decode(embedding: Any) -> Vector:
    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding), dtype="<f4")
    return np.asarray(embedding, dtype=np.float32)


def wrong_vectors(answer: dict[str, Any], planned: Planned) -> int:
    """Vectors that differ from the upstream's (exactly), are missing or out of order."""
    data = answer.get("data", [])
    wrong = abs(len(planned.texts) - len(data))
    for position, (item, text) in enumerate(zip(data, planned.texts, strict=False)):
        want = vector_for(MODEL, text, NATIVE_DIMS, planned.dimensions)
        same = item.get("index") == position and np.array_equal(decode(item["embedding"]), want)
        wrong += not same
    return wrong


def error_message(raw: bytes) -> str:
    """The envelope's message, or the start of a body that is not OpenAI's envelope."""
    try:
        return str(orjson.loads(raw)["error"]["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return f"NOT AN ENVELOPE: {raw[:200]!r}"


async def send(session: aiohttp.ClientSession, url: str, planned: Planned, tally: Tally) -> None:
    started = time.perf_counter()
    headers = {"content-type": "application/json"}
    try:
        async with session.post(url, data=planned.body, headers=headers) as response:
            raw = await response.read()
    except (aiohttp.ClientError, TimeoutError):
        tally.failed["conn"] += 1
        return
    tally.latencies.append(time.perf_counter() - started)
    if response.status != 200:
        tally.failed[str(response.status)] += 1
        tally.messages.setdefault(str(response.status), error_message(raw))
        return
    tally.ok += 1
    tally.wrong_vectors += wrong_vectors(orjson.loads(raw), planned)


# ---------------------------------------------------------------- one phase


async def drive(url: str, phase: str, seconds: float, rate: float, events: list[Event]) -> Tally:
    """Open loop: request i leaves at i / rate, whatever the answers before it are doing."""
    tally = Tally()
    timeout = aiohttp.ClientTimeout(total=DEADLINE + GRACE)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        start = time.perf_counter()
        pending = [asyncio.create_task(_at(start + at, action)) for at, action in events]
        for index in range(int(seconds * rate)):
            await asyncio.sleep(max(0.0, start + index / rate - time.perf_counter()))
            pending.append(asyncio.create_task(send(session, url, plan(phase, index), tally)))
            tally.sent += 1
        await asyncio.wait_for(asyncio.gather(*pending), DEADLINE + 2 * GRACE)
    return tally


async def _at(when: float, action: Callable[[], None]) -> None:
    await asyncio.sleep(max(0.0, when - time.perf_counter()))
    await asyncio.to_thread(action)


Attempts = collections.Counter[tuple[str, str]]  # (provider, status) -> upstream calls


def gateway_counts(metrics_url: str) -> tuple[Attempts, int]:
    """The gateway's own counts: upstream calls by provider and status, failed cache calls."""
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        text = response.read().decode()
    attempts: Attempts = collections.Counter()
    cache_errors = 0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "gateway_upstream_requests_total":
                attempts[(sample.labels["provider"], sample.labels["status"])] += int(sample.value)
            elif sample.name == "gateway_cache_errors_total":
                cache_errors += int(sample.value)
    return attempts, cache_errors


@dataclass(frozen=True, slots=True)
class Phase:
    name: str
    what: str
    events: Callable[[float], list[Event]]
    read_timeout: float | None = None


@dataclass(frozen=True, slots=True)
class Rig:
    loop: BackgroundLoop
    upstream: FakeUpstream
    redis: RedisServer
    seed: int

    def run(self, phase: Phase, seconds: float, rate: float) -> tuple[Tally, Attempts, int]:
        """On a fresh gateway: the phase's tally, its upstream calls and its cache errors."""
        settings = gateway_settings(self.upstream.base_url, self.redis.url, phase.read_timeout)
        port = self.loop.start_app(build_app(settings))
        self.upstream.reset()
        try:
            url = f"http://{HOST}:{port}/v1/embeddings"
            tally = asyncio.run(drive(url, phase.name, seconds, rate, phase.events(seconds)))
            attempts, cache_errors = gateway_counts(f"http://{HOST}:{port}/metrics")
        finally:
            self.upstream.reset()
            self.loop.stop_app(port)
        return tally, attempts, cache_errors


def phases(rig: Rig) -> list[Phase]:
    def redis_events(seconds: float) -> list[Event]:
        return [(seconds / 3, rig.redis.kill), (2 * seconds / 3, rig.redis.start)]

    def error_events(seconds: float) -> list[Event]:
        return [(0.0, lambda: rig.upstream.fail_rate(0.3, (500, 429), rig.seed))]

    def hang_events(seconds: float) -> list[Event]:
        count = int(seconds / HANG_EVERY)
        return [(HANG_EVERY * k, lambda: rig.upstream.hang_next(1)) for k in range(count)]

    return [
        Phase("redis", "Redis killed at 1/3, restarted at 2/3", redis_events),
        Phase("errors", "upstream: 30% of calls 500 or 429", error_events),
        Phase("hangs", f"upstream hangs 1 call / {HANG_EVERY:g} s", hang_events),
        Phase("hangs+rt", "same, provider read_timeout 0.3 s", hang_events, read_timeout=0.3),
    ]


# ---------------------------------------------------------------- report


def _ms(latencies: Sequence[float], q: float) -> str:
    return f"{1000 * float(np.quantile(latencies, q)):.0f}" if latencies else "-"


def row(phase: Phase, tally: Tally, calls: int) -> str:
    failed = " ".join(f"{s}x{n}" for s, n in sorted(tally.failed.items())) or "-"
    return (
        f"{phase.name:<9} {phase.what:<38} {tally.sent:>5} {tally.ok:>5} {failed:<18} "
        f"{tally.wrong_vectors:>6} {calls:>6} {_ms(tally.latencies, 0.5):>6} "
        f"{_ms(tally.latencies, 0.99):>6}"
    )


def calls_text(attempts: Attempts) -> str:
    return ", ".join(f"{p} {s} x{n}" for (p, s), n in sorted(attempts.items())) or "none"


HEADER = (
    f"{'phase':<9} {'fault':<38} {'sent':>5} {'ok':>5} {'failed (status x n)':<18} "
    f"{'wrong':>6} {'calls':>6} {'p50ms':>6} {'p99ms':>6}"
)


def run_faults(rig: Rig, seconds: float, rate: float) -> None:
    print(f"{rate:g} req/s for {seconds:g} s per phase; model {MODEL}")
    print(HEADER, flush=True)
    notes: list[str] = []
    for phase in phases(rig):
        tally, attempts, cache_errors = rig.run(phase, seconds, rate)
        print(row(phase, tally, sum(attempts.values())), flush=True)
        notes.append(f"  {phase.name} upstream calls: {calls_text(attempts)}")
        notes.append(f"  {phase.name} failed cache calls: {cache_errors}")
        notes += [f"  {phase.name} {s}: {m}" for s, m in sorted(tally.messages.items())]
    print("\n".join(notes))


def shipped_loop() -> asyncio.AbstractEventLoop:
    """The event loop the gateway serves on (`python -m gateway serve`): uvloop when importable."""
    try:
        import uvloop  # noqa: PLC0415 - optional, as in the gateway
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second")
    parser.add_argument("--seed", type=int, default=7, help="of the upstream's random failures")
    parser.add_argument(
        "--only", choices=("all", "faults", "abuse"), default="all", help="which phases to run"
    )
    parser.add_argument("--abuse-seconds", type=float, default=4.0, help="length of an abuse phase")
    parser.add_argument(
        "--abuse-phases", default="", help="comma-separated abuse phases to run (default: all)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(name)s %(levelname)s %(message)s")
    redis = RedisServer()
    redis.start()
    try:
        with BackgroundLoop(shipped_loop) as loop:
            upstream = FakeUpstream({MODEL: NATIVE_DIMS})
            loop.run(upstream.start(HOST))
            rig = Rig(loop, upstream, redis, args.seed)
            if args.only in ("all", "faults"):
                run_faults(rig, args.seconds, args.rate)
            if args.only in ("all", "abuse"):
                from bench import abuse  # noqa: PLC0415 (it builds on this module)

                abuse.run_all(rig, args.abuse_seconds, args.rate, args.abuse_phases)
            loop.run(upstream.stop())
    finally:
        redis.stop()


if __name__ == "__main__":
    main()
