"""The abuse phases of `python -m bench.faults`: one tenant attacks, another (the victim) keeps
a fixed request rate; and Redis stalls or runs out of memory. Every loop is bounded by the
phase's length, on loopback only.

    quiet      the victim alone: the figures the others are compared with
    slowbody   300 connections of the attacker's key each send 1 byte every 0.5 s
    huge       the attacker (0.2 req/s) sends 4M-character inputs, 4 at a time
    401s       8 loops of wrong keys from the attacker's IP (5 req/s per IP)
    tokens     the attacker sends 31.5 MB token-array bodies, 4 at a time (peak RSS growth)
    parsed     the attacker sends the largest token-array bodies still parsed (3 MB), 4 at a time
    stall      Redis SIGSTOPped for the middle third (p50 in the stall against quiet)
    evict      Redis at maxmemory 4 MB, volatile-lru, under 16 new vectors per request
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import multiprocessing
import os
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.managers import SyncManager
from threading import Event
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import numpy as np
import orjson
import redis

from bench.faults import (
    HOST,
    MODEL,
    NATIVE_DIMS,
    Planned,
    Rig,
    Tally,
    error_message,
    gateway_raw,
    plan,
)
from bench.faults import wrong_vectors as wrong_in
from gateway.app import build_app
from gateway.protocol import MAX_JSON_VALUES
from gateway.settings import hash_key, parse
from tests.support.background import BackgroundLoop
from tests.support.fake_upstream import FakeUpstream
from tests.support.redis_server import RedisServer

ATTACKER, VICTIM, INTERNAL = "sk-bench-attacker", "sk-bench-victim", "bench-internal-token"
ATTACKER_IP, VICTIM_IP = "203.0.113.66", "192.0.2.10"
Attack = Callable[[str, float, collections.Counter[str]], Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True)
class AbuseRig:
    loop: BackgroundLoop
    redis: RedisServer
    upstream_url: str
    pool: ProcessPoolExecutor  # the victim's and the attacker's processes
    manager: SyncManager  # for the event that starts both clocks


@dataclass
class Outcome:
    victim: Tally
    attacker: collections.Counter[str] = field(default_factory=collections.Counter)
    extra: str = ""


def abuse_settings(rig: AbuseRig, limits: dict[str, Any] | None) -> Any:
    raw = gateway_raw(rig.upstream_url, rig.redis.url)
    attacker: dict[str, Any] = {"name": "attacker", "sha256": hash_key(ATTACKER)}
    if limits:
        attacker["limits"] = limits
    raw["auth"] = {
        "keys": [attacker, {"name": "victim", "sha256": hash_key(VICTIM)}],
        "internal_token": INTERNAL,
        "trusted_proxies": ["127.0.0.1/32"],
    }
    raw["limits"] = {"per_ip": {"requests_per_second": 100, "requests_burst": 100}}
    raw["limits"]["per_key"] = {"requests_per_second": 1000, "tokens_per_minute": 10_000_000}
    return parse(raw)


def headers(key: str, ip: str) -> dict[str, str]:
    return {"x-api-key": key, "content-type": "application/json", "x-forwarded-for": ip}


Timeline = list[tuple[float, float]]  # (sent at, seconds it took)


async def victim_send(
    session: aiohttp.ClientSession, url: str, planned: Planned, tally: Tally, timeline: Timeline
) -> None:
    started = time.perf_counter()
    try:
        async with session.post(url, data=planned.body, headers=headers(VICTIM, VICTIM_IP)) as r:
            raw = await r.read()
    except (aiohttp.ClientError, TimeoutError):
        tally.failed["conn"] += 1
        return
    tally.latencies.append(time.perf_counter() - started)
    timeline.append((started, tally.latencies[-1]))
    if r.status != 200:
        tally.failed[str(r.status)] += 1
        tally.messages.setdefault(str(r.status), error_message(raw))
        return
    tally.ok += 1
    tally.wrong_vectors += wrong_in(orjson.loads(raw), planned)


async def victim(
    url: str,
    phase: str,
    seconds: float,
    rate: float,
    *,
    new: int = 0,
    timeline: Timeline,
    warmed: Callable[[], object] | None = None,
) -> Tally:
    """`warmed`: called after one unmeasured request on the victim's own connection (the
    attack starts then), so no phase's figures include opening it."""
    tally = Tally()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        if warmed is not None:
            await victim_send(session, url, plan(f"{phase} warm-up", 0), Tally(), Timeline())
            warmed()
        start, pending = time.perf_counter(), []
        for index in range(int(seconds * rate)):
            await asyncio.sleep(max(0.0, start + index / rate - time.perf_counter()))
            planned = plan(phase, index) if not new else many_new(phase, index, new)
            sending = victim_send(session, url, planned, tally, timeline)
            pending.append(asyncio.create_task(sending))
            tally.sent += 1
        await asyncio.gather(*pending)
    return tally


def many_new(phase: str, index: int, count: int) -> Planned:
    texts = tuple(f"{phase} {index} new text {k}" for k in range(count))
    return Planned(orjson.dumps({"model": MODEL, "input": list(texts)}), texts, None)


# ---------------------------------------------------------------- attacks


async def _post_loop(
    url: str, stop: float, seen: collections.Counter[str], body: bytes, key: str
) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        while time.perf_counter() < stop:
            try:
                async with session.post(url, data=body, headers=headers(key, ATTACKER_IP)) as r:
                    await r.read()
                    seen[str(r.status)] += 1
            except (aiohttp.ClientError, TimeoutError):
                seen["conn"] += 1
                await asyncio.sleep(0.05)


def looping(body: Callable[[], bytes], key: str, loops: int) -> Attack:
    async def attack(url: str, stop: float, seen: collections.Counter[str]) -> None:
        payload = body()
        await asyncio.gather(*(_post_loop(url, stop, seen, payload, key) for _ in range(loops)))

    return attack


def huge_body() -> bytes:
    return orjson.dumps({"model": MODEL, "input": "a " * 1_995_000})


def token_body() -> bytes:
    row = list(range(1000, 4000))  # 3000 tokens of 4-5 digits each
    return orjson.dumps({"model": MODEL, "input": [row] * 2048})


def parsed_token_body() -> bytes:
    """The most token ids a body may hold and still be parsed (`protocol.MAX_JSON_VALUES`)."""
    row = list(range(1000, 4000))
    return orjson.dumps({"model": MODEL, "input": [row] * (MAX_JSON_VALUES // 3000 - 1)})


async def slow_bodies(url: str, stop: float, seen: collections.Counter[str]) -> None:
    port = urlsplit(url).port or 80
    head = (
        f"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nx-api-key: {ATTACKER}\r\n"
        f"x-forwarded-for: {ATTACKER_IP}\r\nContent-Length: 1000\r\n\r\n"
    ).encode()
    await asyncio.gather(*(_trickle(port, head, stop, seen) for _ in range(300)))


async def _trickle(port: int, head: bytes, stop: float, seen: collections.Counter[str]) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(head)
        while time.perf_counter() < stop and not reader.at_eof():
            writer.write(b"{")
            try:
                line = await asyncio.wait_for(reader.readline(), 0.5)
            except TimeoutError:
                continue
            if line:
                seen[line.split()[1].decode()] += 1
                return
    except (ConnectionError, IndexError):
        seen["reset"] += 1
    finally:
        writer.close()


# ---------------------------------------------------------------- measuring


def rss_bytes(others: list[str]) -> int:
    """This process's RSS plus that of the processes named (its parse processes)."""
    return _rss("self") + sum(_rss(pid) for pid in others)


def _rss(pid: str) -> int:
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * 4096
    except (OSError, IndexError, ValueError):
        return 0  # it ended meanwhile


def _parse_processes() -> list[str]:
    """The forkserver this process started, and the processes it forked."""
    servers, found = {str(os.getpid())}, []
    for pid in sorted(filter(str.isdigit, os.listdir("/proc")), key=int):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                forked = b"multiprocessing.forkserver" in cmdline.read()
            with open(f"/proc/{pid}/stat") as stat:
                parent = stat.read().rsplit(")", 1)[1].split()[1]
        except (OSError, IndexError):
            continue
        if forked and parent in servers:
            servers.add(pid)
            found.append(pid)
    return found


class PeakRss:
    """Samples the RSS of this process and its parse processes every 20 ms on a thread: the
    highest above the start."""

    def __init__(self) -> None:
        self._others = _parse_processes()
        self.start = self.peak = rss_bytes(self._others)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        samples = 0
        while not self._done.wait(0.02):
            samples += 1
            if samples % 25 == 0:  # reading all of /proc is too dear for every sample
                self._others = _parse_processes()
            self.peak = max(self.peak, rss_bytes(self._others))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()


def p50_ms(values: list[float]) -> float:
    return 1000 * float(np.quantile(values, 0.5)) if values else float("nan")


# ---------------------------------------------------------------- phases


@dataclass(frozen=True, slots=True)
class AbusePhase:
    name: str
    what: str
    attack: str = ""  # a name in ATTACKS
    limits: dict[str, Any] | None = None  # the attacker key's own limits
    new: int = 0  # new texts per victim request (0: the faults phases' mix)


def wrong_key_body() -> bytes:
    return plan("401s", 0).body


ATTACKS: dict[str, Attack] = {
    "slowbody": slow_bodies,
    "huge": looping(huge_body, ATTACKER, 4),
    "401s": looping(wrong_key_body, "sk-wrong", 8),
    "tokens": looping(token_body, ATTACKER, 4),
    "parsed": looping(parsed_token_body, ATTACKER, 4),
}
PHASES = [
    AbusePhase("quiet", "the victim alone"),
    AbusePhase("slowbody", "300 conns trickle 1 B / 0.5 s", "slowbody"),
    AbusePhase(
        "huge",
        "4M-char inputs at 0.2 req/s, 4 at once",
        "huge",
        limits={"requests_per_second": 0.2, "requests_burst": 1},
    ),
    AbusePhase("401s", "wrong keys, 8 loops (100 req/s per IP)", "401s"),
    AbusePhase("tokens", "31 MB token-array bodies, 4 at once", "tokens"),
    AbusePhase("parsed", "3 MB token-array bodies, 4 at once", "parsed"),
]


def attack_process(name: str, url: str, seconds: float, go: Event) -> dict[str, int]:
    """One attack, in a process of its own: its CPU never shares the gateway's GIL. It starts
    when the victim's clock does (`go`)."""
    if not go.wait(60):
        raise RuntimeError("the victim never started")
    seen: collections.Counter[str] = collections.Counter()
    asyncio.run(ATTACKS[name](url, time.perf_counter() + seconds, seen))
    return dict(seen)


def victim_process(url: str, phase: AbusePhase, seconds: float, rate: float, go: Event) -> Tally:
    """The victim, in a process of its own: its latencies are the gateway's, not time spent
    waiting for the interpreter lock of the process the gateway runs in."""
    measured = victim(
        url, phase.name, seconds, rate, new=phase.new, timeline=Timeline(), warmed=go.set
    )
    return asyncio.run(measured)


def ready() -> bool:
    return True


async def _drive(
    url: str, phase: AbusePhase, seconds: float, rate: float, rig: AbuseRig
) -> Outcome:
    outcome = Outcome(Tally())
    loop, go = asyncio.get_running_loop(), rig.manager.Event()
    jobs: list[Awaitable[Any]] = [
        loop.run_in_executor(rig.pool, victim_process, url, phase, seconds, rate, go)
    ]
    if phase.attack:
        attacking = loop.run_in_executor(rig.pool, attack_process, phase.attack, url, seconds, go)
        jobs.append(attacking)
    results = await asyncio.gather(*jobs)
    outcome.victim = results[0]
    outcome.attacker.update(results[1] if phase.attack else {})
    return outcome


def run_phase(rig: AbuseRig, phase: AbusePhase, seconds: float, rate: float) -> tuple[Outcome, int]:
    """The phase on a fresh gateway: its outcome and the peak RSS growth in bytes."""
    port = rig.loop.start_app(build_app(abuse_settings(rig, phase.limits)))
    url = f"http://{HOST}:{port}/v1/embeddings"
    try:
        with PeakRss() as rss:
            outcome = asyncio.run(_drive(url, phase, seconds, rate, rig))
    finally:
        rig.loop.stop_app(port)
    return outcome, rss.peak - rss.start


def _ms(values: list[float], q: float) -> str:
    return f"{1000 * float(np.quantile(values, q)):.0f}" if values else "-"


def abuse_row(phase: AbusePhase, outcome: Outcome, rss: int) -> str:
    tally = outcome.victim
    share = 100 * tally.ok / tally.sent if tally.sent else 0.0
    attacker = " ".join(f"{s}x{n}" for s, n in sorted(outcome.attacker.items())) or "-"
    return (
        f"{phase.name:<9} {phase.what:<40} {tally.sent:>5} {tally.ok:>5} {share:>6.1f}% "
        f"{_ms(tally.latencies, 0.5):>6} {_ms(tally.latencies, 0.99):>6} "
        f"{rss / 2**20:>7.0f} {attacker}"
    )


ABUSE_HEADER = (
    f"{'phase':<9} {'attack (by another tenant)':<40} {'sent':>5} {'ok':>5} {'ok %':>7} "
    f"{'p50ms':>6} {'p99ms':>6} {'RSS+MB':>7} attacker answers"
)


def stall_phase(rig: AbuseRig, seconds: float, rate: float) -> str:
    """Redis SIGSTOPped for the middle third: the victim's p50 inside and outside it."""
    port = rig.loop.start_app(build_app(abuse_settings(rig, None)))
    url, timeline = f"http://{HOST}:{port}/v1/embeddings", Timeline()

    async def drive() -> Tally:
        start = time.perf_counter()
        loop = asyncio.get_running_loop()
        loop.call_later(seconds / 3, rig.redis.pause)
        loop.call_later(2 * seconds / 3, rig.redis.resume)
        tally = await victim(url, "stall", seconds, rate, timeline=timeline)
        timeline[:] = [(sent - start, took) for sent, took in timeline]
        return tally

    try:
        tally = asyncio.run(drive())
    finally:
        rig.redis.resume()
        rig.loop.stop_app(port)
    inside = [t for at, t in timeline if seconds / 3 <= at < 2 * seconds / 3]
    outside = [t for at, t in timeline if not seconds / 3 <= at < 2 * seconds / 3]
    return (
        f"stall: Redis SIGSTOPped {seconds / 3:.1f} s; ok {tally.ok}/{tally.sent}; "
        f"p50 {p50_ms(outside):.1f} ms outside the stall, {p50_ms(inside):.1f} ms in it"
    )


def evict_phase(rig: AbuseRig, seconds: float, rate: float) -> str:
    """Redis at maxmemory 4 MB (volatile-lru) under many new vectors: usage rows must hold."""
    admin = redis.Redis.from_url(rig.redis.url)
    admin.flushall()  # usage rows of earlier phases would count too
    admin.config_set("maxmemory", "4mb")
    admin.config_set("maxmemory-policy", "volatile-lru")
    evicted_before = int(admin.info("stats")["evicted_keys"])
    port = rig.loop.start_app(build_app(abuse_settings(rig, None)))
    try:
        url = f"http://{HOST}:{port}/v1/embeddings"
        tally = asyncio.run(victim(url, "evict", seconds, rate, new=16, timeline=[]))
        counted = _usage_requests(f"http://{HOST}:{port}/v1/usage", "victim")
    finally:
        rig.loop.stop_app(port)
        evicted = int(admin.info("stats")["evicted_keys"]) - evicted_before
        admin.config_set("maxmemory", "0")
        admin.close()
    return (
        f"evict: {evicted} cache entries evicted; usage counted {counted} requests of the "
        f"victim's {tally.ok} answered (sent {tally.sent})"
    )


def _usage_requests(url: str, key: str) -> str:
    """The key's requests in /v1/usage; while the answer is partial (Redis skipped by an open
    breaker), asked again after a cooldown, up to 5 times."""

    async def fetch() -> Any:
        async with aiohttp.ClientSession() as session:
            auth = {"authorization": f"Bearer {INTERNAL}"}
            for _ in range(5):
                async with session.get(url, headers=auth) as response:
                    body = await response.json()
                if not body.get("partial"):
                    break
                await asyncio.sleep(2)
            return body

    body = asyncio.run(fetch())
    rows = [m for k in body["keys"] if k["key"] == key for m in k["models"]]
    counted = sum(int(row["requests"]) for row in rows)
    return f"{counted} (partial)" if body.get("partial") else str(counted)


def _serve_upstream(ready: Connection) -> None:
    """In a process of its own, as remote from the gateway as a provider is: the fake upstream.
    (On the gateway's event loop, each of the victim's misses waited behind the attack twice.)"""

    async def serve() -> None:
        upstream = FakeUpstream({MODEL: NATIVE_DIMS})
        ready.send(await upstream.start(HOST))
        await asyncio.Event().wait()

    asyncio.run(serve())


@contextlib.contextmanager
def upstream_process() -> Iterator[str]:
    """The fake upstream's base URL while its process runs."""
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(
        target=_serve_upstream, args=(child,), daemon=True
    )
    process.start()
    try:
        if not parent.poll(60):
            raise RuntimeError("the fake upstream did not start")
        yield str(parent.recv())
    finally:
        process.terminate()
        process.join(5)


def run_all(rig: Rig, seconds: float, rate: float, only: str = "") -> None:
    """Every phase, or those named in `only` (comma-separated)."""
    spawn = multiprocessing.get_context("spawn")
    with (
        upstream_process() as upstream_url,
        spawn.Manager() as manager,
        ProcessPoolExecutor(2, mp_context=spawn) as pool,
    ):
        for started in [pool.submit(ready), pool.submit(ready)]:
            started.result()  # both started before the first phase's clock runs
        _run_all(AbuseRig(rig.loop, rig.redis, upstream_url, pool, manager), seconds, rate, only)


def _run_all(rig: AbuseRig, seconds: float, rate: float, only: str) -> None:
    chosen = set(only.split(",")) if only else None
    print(f"\nabuse: the victim sends {rate:g} req/s for {seconds:g} s per phase")
    print(ABUSE_HEADER, flush=True)
    notes = []
    for phase in PHASES:
        if chosen is not None and phase.name not in chosen:
            continue
        outcome, rss = run_phase(rig, phase, seconds, rate)
        print(abuse_row(phase, outcome, rss), flush=True)
        notes += [f"  {phase.name} victim {s}: {m}" for s, m in outcome.victim.messages.items()]
    if chosen is None or "stall" in chosen:
        print(stall_phase(rig, seconds, rate), flush=True)
    if chosen is None or "evict" in chosen:
        print(evict_phase(rig, seconds, rate), flush=True)
    print("\n".join(notes))
