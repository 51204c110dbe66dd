"""The tables: each measurement beside what it is measured against, as a ratio next to the
absolute value, with the issue's targets (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bench.scenarios import SCALING_KEYS, Scenario
from bench.wrk import Measurement

MEMORY_TARGET_BYTES = 7.5 * 1024  # 7.5 KB per cached 1536-dim vector


SHIPPED = "shipped"  # access log on at info, auth on
LOGS_OFF = "logs off"  # warnings only


@dataclass(frozen=True, slots=True)
class Result:
    scenario: Scenario
    workers: int
    measurement: Measurement
    variant: str = SHIPPED
    fetched: float = 0  # inputs sent upstream meanwhile (an all-hit scenario must send none)

    @property
    def valid(self) -> bool:
        return self.measurement.ok and not self.fetched


@dataclass(frozen=True, slots=True)
class Memory:
    keys: int  # 1536-dim entries sampled
    mean_bytes: float
    max_bytes: int
    value_bytes: int


Key = tuple[str, str, int, str]  # server, scenario key, workers, variant
Results = Mapping[Key, Result]


@dataclass(frozen=True, slots=True)
class Comparison:
    """A figure beside the one it is measured against, and the issue's target for the ratio."""

    against: str  # what, with its absolute value
    ratio: str
    target: str = ""
    met: bool | None = None  # None: no target


SINGLE_HIT_SHARE = 0.45
BATCH_HIT_SHARE = 0.30
LOGGING_COST = 0.10
MISS_ADDS_MS = 1.0
SCALING = 0.8


def _bare_share(result: Result, results: Results) -> Comparison | None:
    bare = results.get(("bare", result.scenario.key, result.workers, SHIPPED))
    if bare is None or bare.measurement.rps == 0:
        return None
    share = result.measurement.rps / bare.measurement.rps
    floor = SINGLE_HIT_SHARE if result.scenario.key.startswith("hit1-") else BATCH_HIT_SHARE
    return Comparison(
        f"bare, same bytes: {bare.measurement.rps:,.0f} req/s",
        f"{share:.0%} of bare",
        f">= {floor:.0%} of bare",
        share >= floor,
    )


def _logging_cost(result: Result, results: Results) -> Comparison | None:
    shipped = results.get(("gateway", result.scenario.key, result.workers, SHIPPED))
    if shipped is None or result.measurement.rps == 0:
        return None
    cost = 1 - shipped.measurement.rps / result.measurement.rps
    return Comparison(
        f"shipped logging: {shipped.measurement.rps:,.0f} req/s",
        f"logging costs {cost:.1%}",
        f"costs <= {LOGGING_COST:.0%}",
        cost <= LOGGING_COST,
    )


def _miss_overhead(result: Result, results: Results) -> Comparison | None:
    direct = results.get(("upstream", "miss-direct", 1, SHIPPED))
    if direct is None:
        return None
    added = result.measurement.p50_ms - direct.measurement.p50_ms
    return Comparison(
        f"upstream directly: p50 {direct.measurement.p50_ms:.2f} ms",
        f"+{added:.2f} ms p50",
        f"adds <= {MISS_ADDS_MS:g} ms p50",
        added <= MISS_ADDS_MS,
    )


def compare(result: Result, results: Results) -> Comparison | None:
    """The 1-worker rows' comparisons (scaling has its own table)."""
    if result.workers != 1 or result.scenario.server != "gateway":
        return None
    if result.variant == LOGS_OFF:
        return _logging_cost(result, results)
    if result.scenario.key.startswith("hit"):
        return _bare_share(result, results)
    if result.scenario.key == "miss-gateway":
        return _miss_overhead(result, results)
    return None


def _invalid(result: Result) -> str:
    m = result.measurement
    if not m.ok:
        return f"INVALID ({m.errors} errors, {m.bad_status} non-2xx)"
    return f"INVALID ({result.fetched:,.0f} inputs went upstream: cache reads failed)"


def _met(met: bool | None) -> str:
    return "" if met is None else ("MET" if met else "MISSED")


def _row(result: Result, results: Results) -> list[str]:
    m = result.measurement
    check = compare(result, results) or Comparison("", "")
    return [
        result.scenario.label,
        result.scenario.server,
        result.variant,
        str(result.scenario.concurrency),
        f"{m.rps:,.0f}",
        f"{m.p50_ms:.2f}",
        f"{m.p99_ms:.2f}",
        check.ratio,
        check.against,
        check.target,
        _met(check.met) if result.valid else _invalid(result),
        f"{1e6 * m.cpu.server / m.rps:,.0f}" if m.rps else "",
        f"{m.cpu.server:.2f}/{m.cpu.wrk:.2f}/{m.cpu.aux:.2f}/{m.cpu.other:.2f}",
    ]


HEADER = ("scenario", "server", "config", "conc", "req/s", "p50 ms", "p99 ms", "ratio",
          "measured against", "target", "met?", "srv CPU µs/req",
          "CPU srv/wrk/aux/other")  # fmt: skip


def _memory_row(memory: Memory) -> list[str]:
    met = memory.mean_bytes <= MEMORY_TARGET_BYTES
    target = (
        f"<= 7.5 KB/vector ({memory.mean_bytes:,.0f} B mean, max {memory.max_bytes:,} B, "
        f"{memory.keys} keys, value {memory.value_bytes:,} B)"
    )
    return ["Redis MEMORY USAGE per 1536-dim vector", "redis", "", "", "", "", "", "", "",
            target, "MET" if met else "MISSED", "", ""]  # fmt: skip


def _markdown(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
             for row in rows]  # fmt: skip
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return lines


def by_key(results: Sequence[Result]) -> dict[Key, Result]:
    return {(r.scenario.server, r.scenario.key, r.workers, r.variant): r for r in results}


def table(
    results: Sequence[Result], memory: Memory | None, scaling: Sequence[int], cores: int
) -> str:
    """Markdown: the 1-worker table, in the order the scenarios ran, then the scaling table."""
    keyed = by_key(results)
    rows = [list(HEADER)] + [_row(r, keyed) for r in results if r.workers == 1]
    if memory is not None:
        rows.append(_memory_row(memory))
    scaled = scaling_table(keyed, scaling, cores)
    return "\n".join([*_markdown(rows), "", *scaled, "", *LEGEND])


SCALING_HEADER = ("workers", "scenario", "conc", "gateway req/s", "vs N x 1 worker",
                  "bare req/s", "bare vs N x 1", "% of bare", "vs 1-worker % of bare",
                  "target", "met?")  # fmt: skip


def _scaling_row(results: Results, key: str, workers: int) -> list[str] | None:
    one, many = (results.get(("gateway", key, n, SHIPPED)) for n in (1, workers))
    bare_one, bare_many = (results.get(("bare", key, n, SHIPPED)) for n in (1, workers))
    if one is None or many is None or bare_one is None or bare_many is None:
        return None
    rps = many.measurement.rps
    efficiency = rps / (workers * one.measurement.rps)
    bare_efficiency = bare_many.measurement.rps / (workers * bare_one.measurement.rps)
    share_one = one.measurement.rps / bare_one.measurement.rps
    share = rps / bare_many.measurement.rps
    kept = share / share_one
    met = efficiency >= SCALING and kept >= SCALING
    return [str(workers), many.scenario.label, str(many.scenario.concurrency), f"{rps:,.0f}",
            f"{efficiency:.2f}", f"{bare_many.measurement.rps:,.0f}", f"{bare_efficiency:.2f}",
            f"{share:.0%}", f"{kept:.2f}", f">= {SCALING:g} and >= {SCALING:g}",
            _met(met) if many.valid else _invalid(many)]  # fmt: skip


def scaling_table(results: Results, scaling: Sequence[int], cores: int) -> list[str]:
    rows = [list(SCALING_HEADER)]
    for workers in scaling:
        if workers > cores:
            rows.append([str(workers), f"not measured: this machine has {cores} cores", *[""] * 9])
            continue
        for key in SCALING_KEYS:
            row = _scaling_row(results, key, workers)
            if row is not None:
                rows.append(row)
    return ["Scaling: N gateway workers on one Redis, the shipped configuration", "",
            *_markdown(rows)]  # fmt: skip


LEGEND = (
    "ratio: each figure against the one in 'measured against', taken in the same run. "
    "% of bare: requests/s as a share of a bare aiohttp handler replaying the gateway's own "
    "answer to that same request (same bytes and headers, workers and concurrency). "
    "logging costs: 1 - shipped req/s / logs-off req/s. "
    "A miss: p50 through the gateway minus p50 calling the fake upstream directly.",
    "Scaling: 'vs N x 1 worker' is N-worker req/s over N times the 1-worker figure (c8, one "
    "worker's share of connections); 'vs 1-worker % of bare' is the N-worker share of N bare "
    "processes over the 1-worker share of one. 'bare vs N x 1' shows what the machine itself "
    "allows: wrk, redis-server and the server share its cores.",
    "srv CPU µs/req: the server's CPU time per request, which holds up better than req/s "
    "while other processes take CPU time. CPU srv/wrk/aux/other: cores used meanwhile by the "
    "server under test / wrk / the other processes of this run (redis-server, fake upstream, "
    "idle servers) / everything else on the machine (high: a noisy figure).",
    "config: shipped is config.yaml's (access log at info, auth on; requests carry the "
    "internal token, so the rate limiter never throttles); logs off: warnings only.",
)
