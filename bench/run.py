"""`python -m bench.run [--quick] [--workers N]`: the whole benchmark, one table on stdout.

Progress goes to stderr. Every process it starts (redis-server, the fake upstream, the gateway,
the bare handlers, wrk) listens on or targets 127.0.0.1 only and is stopped by its own pid.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

from bench import bare, cpu, scenarios, stack, wrk
from bench.report import Memory, Result, table
from bench.scenarios import Scenario
from tests.support.redis_server import RedisServer

_NOT_REPLAYED = {"date", "server", "content-length", "connection", "keep-alive"}
CACHE_WAIT_S = 15.0
RETRIES = 2  # measurements taken again when other processes were busy meanwhile


@dataclass(frozen=True, slots=True)
class Options:
    duration: float
    warmup: float
    workers: int
    quiet: cpu.QuietGate


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- plain HTTP, for setup only


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


def capture_single_hits(url: str, directory: Path) -> None:
    """The gateway's own single-hit answers, for the bare handler to replay byte for byte."""
    for encoding in ("float", "base64"):
        body = scenarios.body(scenarios.SINGLE, encoding)
        status, headers, answer = post(url, body, stack.INTERNAL_TOKEN)
        if status != 200 or headers.get("x-cache") != "HIT":
            raise RuntimeError(f"single hit ({encoding}) answered {status}: {answer[:300]!r}")
        replayed = {k: v for k, v in headers.items() if k.lower() not in _NOT_REPLAYED}
        bare.save(directory, encoding, answer, replayed)


# ---------------------------------------------------------------- measuring


@dataclass(frozen=True, slots=True)
class Target:
    """A server under load: where to send, and how to read its CPU time."""

    url: str  # the embeddings endpoint
    token: str | None
    pids: cpu.Pids  # the server's processes


def measure(
    scenario: Scenario, target: Target, workers: int, opts: Options, workdir: Path
) -> Result:
    load = wrk.Load(
        url=target.url,
        body=scenario.body,
        concurrency=scenario.concurrency,
        token=target.token,
        timeout_s=scenario.timeout_s,
    )
    cpu.place(target.pids, isolate=workers == 1)
    for _attempt in range(RETRIES + 1):
        opts.quiet.wait()
        wrk.run(load, opts.warmup, workdir, target.pids)  # warm-up, discarded
        m = wrk.run(load, opts.duration, workdir, target.pids)
        if not opts.quiet.disturbed(m.cpu.other):
            break
        log(f"  (others used {m.cpu.other:.2f} CPU meanwhile: measuring again)")
        opts.quiet.waited_s += opts.warmup + opts.duration  # retries spend the same budget
    result = Result(scenario, workers, m)
    log(
        f"  {scenario.server:8} {workers}w {scenario.label:45} c{scenario.concurrency}: "
        f"{m.rps:9,.0f} req/s  p50 {m.p50_ms:7.2f} ms  p99 {m.p99_ms:7.2f} ms  "
        f"CPU server {m.cpu.server:.2f} wrk {m.cpu.wrk:.2f} aux {m.cpu.aux:.2f} "
        f"other {m.cpu.other:.2f}" + ("" if m.ok else f"  ERRORS {m.errors} non-2xx {m.bad_status}")
    )
    return result


def tree_pids(services: Sequence[stack.Service]) -> cpu.Pids:
    return lambda: [pid for service in services for pid in service.tree()]


def bench_bare(workers: int, responses: Path, opts: Options, workdir: Path) -> list[Result]:
    services, url = stack.start_bare(responses, workers, workdir)
    try:
        target = Target(f"{url}/v1/embeddings", None, tree_pids(services))
        return [measure(s, target, workers, opts, workdir) for s in scenarios.single_hits("bare")]
    finally:
        for service in services:
            service.stop()


def bench_gateway(workers: int, config: Path, opts: Options, workdir: Path) -> list[Result]:
    log(f"gateway with {workers} worker(s)")
    gateway, url = stack.start_gateway(config, workers, workdir)
    endpoint = f"{url}/v1/embeddings"
    try:
        check_auth_is_on(endpoint)
        warm(endpoint)
        responses = workdir / f"responses-{workers}w"
        responses.mkdir()
        capture_single_hits(endpoint, responses)
        results = bench_bare(workers, responses, opts, workdir)
        target = Target(endpoint, stack.INTERNAL_TOKEN, tree_pids([gateway]))
        for scenario in scenarios.gateway_scenarios():
            probe(endpoint, scenario, stack.INTERNAL_TOKEN)
            results.append(measure(scenario, target, workers, opts, workdir))
        return results
    finally:
        gateway.stop()


def bench_upstream(upstream: stack.Service, url: str, opts: Options, workdir: Path) -> Result:
    """The gateway's miss scenario sent straight to the fake upstream."""
    target = Target(f"{url}/embeddings", None, tree_pids([upstream]))
    probe(target.url, scenarios.DIRECT_MISS, None)
    return measure(scenarios.DIRECT_MISS, target, 1, opts, workdir)


def check_auth_is_on(url: str) -> None:
    """Auth must be on: no key is refused, the configured bench key is accepted."""
    body = scenarios.body(scenarios.SINGLE, "base64")
    refused, _, _ = post(url, body, None)
    accepted, _, _ = post(url, body, stack.BENCH_KEY)
    if refused != 401 or accepted != 200:
        raise RuntimeError(f"auth is not on as configured: no key {refused}, bench key {accepted}")


def redis_memory(url: str, sample: int = 1000) -> Memory:
    """MEMORY USAGE over the gateway's 1536-dim cache entries (keys gw:e:v2:<hex>)."""
    value_bytes = 12 + 4 * stack.DIMENSIONS
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


# ---------------------------------------------------------------- the run


def machine(argv: Sequence[str]) -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in cpuinfo.splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    wrk_version = subprocess.run(
        [wrk.wrk_binary() or "wrk", "-v"], capture_output=True, text=True, check=False, timeout=10
    ).stdout.split("\n", 1)[0]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=stack.REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    ).stdout.strip()
    return "\n".join(
        [
            f"gateway: commit {commit or 'unknown'} (plus any uncommitted changes)",
            f"machine: {os.cpu_count()} cores, {model}, {platform.system()} {platform.release()}",
            f"python:  {platform.python_implementation()} {platform.python_version()}",
            f"load:    {wrk_version.strip()} (1 thread, separate process)",
            f"command: {shlex.join([Path(sys.executable).name, '-m', 'bench.run', *argv])}",
        ]
    )


def run(opts: Options, workdir: Path) -> tuple[list[Result], Memory]:
    redis_server = RedisServer()
    redis_server.start()
    upstream: stack.Service | None = None
    try:
        upstream, upstream_url = stack.start_upstream(workdir)
        config = stack.write_gateway_config(
            workdir / "gateway.yaml", upstream_url, redis_server.url
        )
        results: list[Result] = []
        for workers in dict.fromkeys((1, opts.workers)):
            results += bench_gateway(workers, config, opts, workdir)
            if workers == 1:
                results.append(bench_upstream(upstream, upstream_url, opts, workdir))
        return results, redis_memory(redis_server.url)
    finally:
        if upstream is not None:
            upstream.stop()
        redis_server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2 s per scenario instead of 5")
    parser.add_argument("--duration", type=float, help="seconds measured per scenario")
    parser.add_argument("--workers", type=int, default=2, help="the multi-worker gateway (2)")
    parser.add_argument(
        "--quiet-budget",
        type=float,
        default=60.0,
        help="seconds in all to wait for other processes to leave the CPU idle (60)",
    )
    args = parser.parse_args(argv)
    if wrk.wrk_binary() is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    duration = args.duration or (2.0 if args.quick else 5.0)
    opts = Options(
        duration=min(duration, 30.0),
        warmup=1.0,
        workers=max(1, args.workers),
        quiet=cpu.QuietGate(budget_s=max(0.0, args.quiet_budget)),
    )
    header = machine(argv)
    log(header)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        results, memory = run(opts, Path(tmp))
    print(header)
    print(
        f"time:    {time.monotonic() - started:.0f} s, {opts.duration:g} s per scenario after "
        f"{opts.warmup:g} s warm-up ({opts.quiet.waited_s:.0f} s spent waiting for other "
        f"processes to leave the CPU or measuring again)\n"
        f"CPUs:    1-worker rows: the server alone on CPU 0, wrk, redis and the upstream on the "
        f"other(s); {opts.workers}-worker rows: every process on every CPU\n"
        f"inputs:  {scenarios.describe()}"
    )
    print()
    print(table(results, memory))
    return 0


if __name__ == "__main__":
    sys.exit(main())
