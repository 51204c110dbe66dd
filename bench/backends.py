"""`python -m bench.backends [--quick]`: cache hits per second and p50 on each cache backend
(memory, SQLite with and without its in-process tier, Redis), beside the bare aiohttp handler
replaying the same answer. One table on stdout; progress on stderr.

Each backend gets a fresh 1-worker gateway (pinned to CPU 0, as in bench.run), warmed with
every hot input, then loaded by wrk. SQLite and Redis are also measured with 2 workers.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench import cpu, scenarios, stack, wrk
from bench.run import Options, Target, bench_bare, log, measure
from bench.scenarios import Scenario
from bench.setup import capture_single_hits, warm
from tests.support.redis_server import RedisServer


@dataclass(frozen=True, slots=True)
class Backend:
    label: str
    store: str  # stores.cache
    cache: dict[str, Any] = field(default_factory=dict)  # cache settings beside the defaults
    redis: bool = False


BACKENDS = (
    Backend("memory", "memory"),
    Backend("sqlite", "sqlite"),
    Backend("sqlite, no in-process tier", "sqlite", {"hot_entries": 1}),
    Backend("redis", "redis", redis=True),
)
HIT1 = "hit1-base64-c1"
HIT1_C8 = "hit1-base64-c8"


def hit_scenarios() -> list[Scenario]:
    single = [s for s in scenarios.single_hits("gateway") if s.key in (HIT1, HIT1_C8)]
    batch = [s for s in scenarios.gateway_scenarios() if s.key == "hit64-base64"]
    return single + batch


def write_config(path: Path, upstream_url: str, redis_url: str, backend: Backend) -> Path:
    raw = stack.gateway_config(upstream_url, redis_url if backend.redis else "", logs=False)
    raw["cache"].update(backend.cache)
    raw["stores"] = {"cache": backend.store, "data_dir": str(path.parent / f"data-{path.stem}")}
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def bench_backend(
    config: Path, workers: int, opts: Options, workdir: Path
) -> list[tuple[str, Any]]:
    gateway, url = stack.start_gateway(config, workers, workdir)
    endpoint = f"{url}/v1/embeddings"
    try:
        warm(endpoint)
        target = Target(endpoint, stack.INTERNAL_TOKEN, gateway.tree)
        chosen = (
            hit_scenarios() if workers == 1 else [s for s in hit_scenarios() if s.key == HIT1_C8]
        )
        return [(s.key, measure(s, target, workers, opts, workdir).measurement) for s in chosen]
    finally:
        gateway.stop()


def bare_rows(upstream_url: str, opts: Options, workdir: Path) -> dict[tuple[str, int], Any]:
    """The bare handler replaying the memory gateway's own single-hit answers."""
    config = write_config(workdir / "capture.yaml", upstream_url, "", BACKENDS[0])
    gateway, url = stack.start_gateway(config, 1, workdir)
    responses = workdir / "responses"
    responses.mkdir()
    try:
        warm(f"{url}/v1/embeddings")
        capture_single_hits(f"{url}/v1/embeddings", responses)
    finally:
        gateway.stop()
    rows = {}
    for workers in (1, 2):
        for result in bench_bare(workers, responses, opts, workdir):
            rows[(result.scenario.key, workers)] = result.measurement
    return rows


def table(rows: list[tuple[str, int, str, Any]], bare: dict[tuple[str, int], Any]) -> str:
    labels = {s.key: f"{s.label}, c{s.concurrency}" for s in hit_scenarios()}
    lines = [
        "| backend | workers | scenario | hits/s | share of bare | p50 ms | p99 ms "
        "| server CPU µs/req | redis CPU µs/req |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (key, workers), m in sorted(bare.items()):
        if key in (HIT1, HIT1_C8):
            lines.append(_row("bare handler", workers, labels[key], m, "100%"))
    for label, workers, key, m in rows:
        reference = bare.get((key, workers))
        share = f"{m.rps / reference.rps:.0%}" if reference is not None and reference.rps else ""
        lines.append(_row(label, workers, labels[key], m, share))
    return "\n".join(lines)


def _row(label: str, workers: int, scenario: str, m: Any, share: str) -> str:
    """CPU per request holds up better than req/s on a machine others are using."""
    per_request = 1e6 / m.rps if m.rps else 0.0
    return (
        f"| {label} | {workers} | {scenario} | {m.rps:,.0f} | {share} | {m.p50_ms:.2f} "
        f"| {m.p99_ms:.2f} | {m.cpu.server * per_request:.0f} | {m.cpu.aux * per_request:.0f} |"
    )


def run(opts: Options, workdir: Path) -> str:
    with RedisServer() as redis_server:
        upstream, upstream_url = stack.start_upstream(workdir)
        try:
            bare = bare_rows(upstream_url, opts, workdir)
            rows: list[tuple[str, int, str, Any]] = []
            for i, backend in enumerate(BACKENDS):
                config = write_config(
                    workdir / f"b{i}.yaml", upstream_url, redis_server.url, backend
                )
                for workers in (1, 2) if backend.label in ("sqlite", "redis") else (1,):
                    log(f"{backend.label}, {workers} worker(s)")
                    for key, m in bench_backend(config, workers, opts, workdir):
                        rows.append((backend.label, workers, key, m))
            return table(rows, bare)
        finally:
            upstream.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backends", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2 s per scenario instead of 5")
    parser.add_argument("--quiet-budget", type=float, default=60.0)
    args = parser.parse_args(argv)
    if wrk.wrk_binary() is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    opts = Options(
        duration=2.0 if args.quick else 5.0,
        warmup=1.0,
        scaling=(1, 2),
        quiet=cpu.QuietGate(budget_s=max(0.0, args.quiet_budget)),
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        print(run(opts, Path(tmp)))
    log(f"{time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
