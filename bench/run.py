"""`python -m bench.run [--quick] [--scaling 1,2,4,8]`: the whole benchmark, one table on stdout.

Every figure is set beside the one it is measured against, in the same run: the gateway's
all-hit answers beside a bare aiohttp handler replaying the same bytes, the shipped logging
beside logs off, a miss beside the upstream called directly, N workers beside N times one
worker and beside N bare processes.

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

from bench import cpu, scenarios, stack, wrk
from bench.report import LOGS_OFF, SHIPPED, Memory, Result, table
from bench.scenarios import Scenario
from bench.setup import capture, check_auth_is_on, probe, redis_memory, warm
from tests.support.redis_server import RedisServer

RETRIES = 2  # measurements taken again when other processes were busy meanwhile


@dataclass(frozen=True, slots=True)
class Options:
    duration: float
    warmup: float
    scaling: tuple[int, ...]  # worker counts; 1 first
    quiet: cpu.QuietGate


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- measuring


@dataclass(frozen=True, slots=True)
class Target:
    """A server under load: where to send, and how to read its CPU time."""

    url: str  # the embeddings endpoint
    token: str | None
    pids: cpu.Pids  # the server's processes


def measure(
    scenario: Scenario,
    target: Target,
    workers: int,
    opts: Options,
    workdir: Path,
    *,
    variant: str = SHIPPED,
) -> Result:
    load = wrk.Load(
        url=target.url,
        body=scenario.body,
        concurrency=scenario.concurrency,
        token=target.token,
        timeout_s=scenario.timeout_s,
        threads=wrk_threads(workers),
    )
    cpu.place(target.pids, isolate=workers == 1)
    for _attempt in range(RETRIES + 1):
        opts.quiet.wait()
        wrk.run(load, opts.warmup, workdir, target.pids)  # warm-up, discarded
        before = upstream_inputs(target)
        m = wrk.run(load, opts.duration, workdir, target.pids)
        fetched = upstream_inputs(target) - before
        if not opts.quiet.disturbed(m.cpu.other):
            break
        log(f"  (others used {m.cpu.other:.2f} CPU meanwhile: measuring again)")
        opts.quiet.waited_s += opts.warmup + opts.duration  # retries spend the same budget
    result = Result(scenario, workers, m, variant, fetched if scenario.expect == "HIT" else 0)
    log(
        f"  {scenario.server:8} {workers}w {variant:8} {scenario.label:40} "
        f"c{scenario.concurrency}: {m.rps:9,.0f} req/s  p50 {m.p50_ms:7.2f} ms  "
        f"p99 {m.p99_ms:7.2f} ms  CPU server {m.cpu.server:.2f} wrk {m.cpu.wrk:.2f} "
        f"aux {m.cpu.aux:.2f} other {m.cpu.other:.2f}"
        + ("" if m.ok else f"  ERRORS {m.errors} non-2xx {m.bad_status}")
        + (f"  {result.fetched:.0f} INPUTS WENT UPSTREAM" if result.fetched else "")
    )
    return result


_UPSTREAM_INPUTS = "gateway_upstream_inputs_total{"


def upstream_inputs(target: Target) -> float:
    """What the gateway has sent upstream so far (0 for servers without /metrics): an all-hit
    scenario that sends any input upstream measured misses (a cache read failed or timed out)."""
    if target.token is None:
        return 0.0
    url = target.url.rsplit("/v1/", 1)[0] + "/metrics"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {target.token}"})
    with stack.urlopen(request, 30) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(_UPSTREAM_INPUTS)
    )


def wrk_threads(workers: int) -> int:
    """One load thread per two server processes, at most four, never more than the cores."""
    return max(1, min(4, workers // 2, (os.cpu_count() or 1) // 2))


def tree_pids(services: Sequence[stack.Service]) -> cpu.Pids:
    return lambda: [pid for service in services for pid in service.tree()]


def bench_bare(
    workers: int,
    responses: Path,
    opts: Options,
    workdir: Path,
    chosen: Sequence[Scenario] | None = None,
) -> list[Result]:
    """`workers` bare processes replaying the captured answers (the single hits by default)."""
    services, url = stack.start_bare(responses, workers, workdir)
    try:
        target = Target(f"{url}/v1/embeddings", None, tree_pids(services))
        chosen = scenarios.single_hits("bare") if chosen is None else chosen
        return [measure(s, target, workers, opts, workdir) for s in chosen]
    finally:
        for service in services:
            service.stop()


def gateway_target(config: Path, workers: int, workdir: Path) -> tuple[stack.Service, Target]:
    gateway, url = stack.start_gateway(config, workers, workdir)
    return gateway, Target(f"{url}/v1/embeddings", stack.INTERNAL_TOKEN, tree_pids([gateway]))


def bare_target(responses: Path, workers: int, workdir: Path) -> tuple[list[stack.Service], Target]:
    services, url = stack.start_bare(responses, workers, workdir)
    return services, Target(f"{url}/v1/embeddings", None, tree_pids(services))


def one_worker(
    configs: tuple[Path, Path], upstream: tuple[stack.Service, str], opts: Options, workdir: Path
) -> tuple[list[Result], Path]:
    """1 worker: the shipped gateway on every scenario. Each all-hit scenario is measured right
    after a bare handler replaying the gateway's own answer to it, and each single hit right
    before the gateway with logs off: the figures of one ratio share the machine's state of
    the same few seconds. Also answers where the captured answers are."""
    log("1 worker: the shipped gateway, the gateway with logs off, a bare handler")
    services: list[stack.Service] = []
    try:
        gateway, shipped = gateway_target(configs[0], 1, workdir)
        services.append(gateway)
        check_auth_is_on(shipped.url)
        warm(shipped.url)
        responses = workdir / "responses"
        responses.mkdir()
        capture(shipped.url, responses, scenarios.hits("gateway"))
        silent, logs_off = gateway_target(configs[1], 1, workdir)
        bares, bare = bare_target(responses, 1, workdir)
        services += [silent, *bares]
        results = []
        for ours, theirs in zip(scenarios.hits("gateway"), scenarios.hits("bare"), strict=True):
            results.append(measure(theirs, bare, 1, opts, workdir))
            results += measure_all([ours], shipped, 1, opts, workdir)
            if ours.key.startswith("hit1-"):
                results += measure_all([ours], logs_off, 1, opts, workdir, variant=LOGS_OFF)
        others = [s for s in scenarios.gateway_scenarios() if s.expect != "HIT"]
        results += measure_all(others, shipped, 1, opts, workdir)
        results.append(bench_upstream(*upstream, opts, workdir))
        return results, responses
    finally:
        for service in services:
            service.stop()


def measure_all(
    chosen: Sequence[Scenario],
    target: Target,
    workers: int,
    opts: Options,
    workdir: Path,
    *,
    variant: str = SHIPPED,
) -> list[Result]:
    """Each scenario after a probe of it (which must succeed, with the expected x-cache)."""
    results = []
    for scenario in chosen:
        probe(target.url, scenario, target.token)
        results.append(measure(scenario, target, workers, opts, workdir, variant=variant))
    return results


def bench_scaled(
    workers: int, config: Path, responses: Path, opts: Options, workdir: Path
) -> list[Result]:
    """N gateway workers on the one Redis and N bare processes, each scaling scenario on the
    bare processes and then on the gateway."""
    log(f"{workers} workers: the shipped gateway and bare processes")
    services: list[stack.Service] = []
    try:
        gateway, shipped = gateway_target(config, workers, workdir)
        bares, bare = bare_target(responses, workers, workdir)
        services += [gateway, *bares]
        results = []
        for ours, theirs in zip(
            scenarios.scaling_scenarios("gateway", workers),
            scenarios.scaling_scenarios("bare", workers),
            strict=True,
        ):
            results.append(measure(theirs, bare, workers, opts, workdir))
            results += measure_all([ours], shipped, workers, opts, workdir)
        return results
    finally:
        for service in services:
            service.stop()


def bench_upstream(upstream: stack.Service, url: str, opts: Options, workdir: Path) -> Result:
    """The gateway's miss scenario sent straight to the fake upstream."""
    target = Target(f"{url}/embeddings", None, tree_pids([upstream]))
    probe(target.url, scenarios.DIRECT_MISS, None)
    return measure(scenarios.DIRECT_MISS, target, 1, opts, workdir)


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
        shipped, quiet = (
            stack.write_gateway_config(
                workdir / f"{name}.yaml", upstream_url, redis_server.url, logs=logs
            )
            for name, logs in (("shipped", True), ("logs-off", False))
        )
        results, responses = one_worker((shipped, quiet), (upstream, upstream_url), opts, workdir)
        for workers in measurable(opts.scaling):
            if workers > 1:
                results += bench_scaled(workers, shipped, responses, opts, workdir)
        return results, redis_memory(redis_server.url)
    finally:
        if upstream is not None:
            upstream.stop()
        redis_server.stop()


def measurable(scaling: Sequence[int]) -> list[int]:
    """Worker counts up to the machine's cores: more processes than cores measure nothing
    but the scheduler."""
    return [n for n in scaling if n <= (os.cpu_count() or 1)]


def worker_counts(text: str) -> tuple[int, ...]:
    try:
        counts = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of worker counts: {text!r}") from None
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError(f"worker counts are 1 or more: {text!r}")
    return tuple(dict.fromkeys((1, *counts)))  # the 1-worker figure is what N scales from


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2 s per scenario instead of 5")
    parser.add_argument("--duration", type=float, help="seconds measured per scenario")
    parser.add_argument(
        "--scaling",
        type=worker_counts,
        default=(1, 2),
        help="worker counts for the scaling rows, e.g. 1,2,4,8 (1,2); counts above the "
        "machine's cores are listed as not measured",
    )
    parser.add_argument(
        "--quiet-budget",
        type=float,
        default=60.0,
        help="seconds in all to wait for other processes to leave the CPU idle (60)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if wrk.wrk_binary() is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    duration = args.duration or (2.0 if args.quick else 5.0)
    opts = Options(
        duration=min(duration, 30.0),
        warmup=1.0,
        scaling=args.scaling,
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
        f"other(s); N-worker rows: every process on every CPU\n"
        f"inputs:  {scenarios.describe()}"
    )
    print()
    print(table(results, memory, opts.scaling, os.cpu_count() or 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
