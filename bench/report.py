"""The one table: each measurement, its share of the bare handler, the issue's targets (pure)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bench.scenarios import Scenario
from bench.wrk import Measurement

MEMORY_TARGET_BYTES = 7.5 * 1024  # 7.5 KB per cached 1536-dim vector


@dataclass(frozen=True, slots=True)
class Result:
    scenario: Scenario
    workers: int
    measurement: Measurement


@dataclass(frozen=True, slots=True)
class Memory:
    keys: int  # 1536-dim entries sampled
    mean_bytes: float
    max_bytes: int
    value_bytes: int


@dataclass(frozen=True, slots=True)
class Verdict:
    target: str
    met: bool


Results = Mapping[tuple[str, str, int], Result]  # (server, scenario key, workers)
Check = Callable[[Result, Results], Verdict | None]


def bare_share(result: Result, results: Results) -> float | None:
    """Requests/s as a share of the bare handler serving the same bytes, same concurrency."""
    if not result.scenario.key.startswith("hit1-") or result.scenario.server != "gateway":
        return None
    bare = results.get(("bare", result.scenario.key, result.workers))
    if bare is None or bare.measurement.rps == 0:
        return None
    return result.measurement.rps / bare.measurement.rps


def _single_hit(result: Result, results: Results) -> Verdict | None:
    share = bare_share(result, results)
    if share is None:
        return None
    p50 = result.measurement.p50_ms
    return Verdict(
        f">= 35% bare & p50 <= 1 ms ({share:.0%}, {p50:.2f} ms)", share >= 0.35 and p50 <= 1.0
    )


def _rps_at_least(floor: float) -> Check:
    def check(result: Result, results: Results) -> Verdict:
        return Verdict(f">= {floor:g} req/s", result.measurement.rps >= floor)

    return check


def _p50_at_most(ceiling_ms: float) -> Check:
    def check(result: Result, results: Results) -> Verdict:
        return Verdict(f"p50 <= {ceiling_ms:g} ms", result.measurement.p50_ms <= ceiling_ms)

    return check


def _miss_overhead(result: Result, results: Results) -> Verdict | None:
    direct = results.get(("upstream", "miss-direct", 1))
    if direct is None:
        return None
    added = result.measurement.p50_ms - direct.measurement.p50_ms
    return Verdict(f"adds <= 1 ms p50 (+{added:.2f} ms)", added <= 1.0)


TARGETS: Mapping[str, Check] = {
    "hit1-float-c1": _single_hit,
    "hit1-base64-c1": _single_hit,
    "hit64-float": _rps_at_least(200),
    "hit64-base64": _rps_at_least(400),
    "hit2048-base64": _p50_at_most(80),
    "miss-gateway": _miss_overhead,
}


def verdict(result: Result, results: Results) -> Verdict | None:
    """The issue's targets are for the gateway with 1 worker."""
    check = TARGETS.get(result.scenario.key)
    if check is None or result.workers != 1 or result.scenario.server != "gateway":
        return None
    return check(result, results)


HEADER = (
    "scenario",
    "server",
    "workers",
    "conc",
    "req/s",
    "p50 ms",
    "p99 ms",
    "% bare",
    "CPU srv/wrk/aux/other",
    "target",
    "met?",
)


def _row(result: Result, results: Results) -> list[str]:
    m = result.measurement
    share = bare_share(result, results)
    check = verdict(result, results)
    met = "" if check is None else ("MET" if check.met else "MISSED")
    if not m.ok:
        met = f"INVALID ({m.errors} errors, {m.bad_status} non-2xx)"
    return [
        result.scenario.label,
        result.scenario.server,
        str(result.workers),
        str(result.scenario.concurrency),
        f"{m.rps:,.0f}",
        f"{m.p50_ms:.2f}",
        f"{m.p99_ms:.2f}",
        "" if share is None else f"{share:.0%}",
        f"{m.cpu.server:.2f}/{m.cpu.wrk:.2f}/{m.cpu.aux:.2f}/{m.cpu.other:.2f}",
        "" if check is None else check.target,
        met,
    ]


def _memory_row(memory: Memory) -> list[str]:
    met = memory.mean_bytes <= MEMORY_TARGET_BYTES
    target = (
        f"<= 7.5 KB/vector ({memory.mean_bytes:,.0f} B mean, max {memory.max_bytes:,} B, "
        f"{memory.keys} keys, value {memory.value_bytes:,} B)"
    )
    return ["Redis MEMORY USAGE per 1536-dim vector", "redis", "", "", "", "", "", "", "",
            target, "MET" if met else "MISSED"]  # fmt: skip


def table(results: Sequence[Result], memory: Memory | None) -> str:
    """A Markdown table, in the order the scenarios ran."""
    by_key: dict[tuple[str, str, int], Result] = {
        (r.scenario.server, r.scenario.key, r.workers): r for r in results
    }
    rows = [list(HEADER)] + [_row(r, by_key) for r in results]
    if memory is not None:
        rows.append(_memory_row(memory))
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
             for row in rows]  # fmt: skip
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join([*lines, "", *LEGEND])


LEGEND = (
    "% bare: requests/s as a share of a bare aiohttp handler replaying the gateway's own "
    "single-hit answer (same bytes, workers and concurrency).",
    "CPU srv/wrk/aux/other: cores used meanwhile by the server under test / wrk / the other "
    "processes of this run (redis-server, fake upstream, idle servers) / everything else on "
    "the machine (high: a noisy figure).",
    "Targets are the issue's, for the gateway with 1 worker; auth is on and requests carry "
    "the internal token, so the rate limiter never throttles.",
)
