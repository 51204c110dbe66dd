"""The benchmark's tables set each figure beside the one it is measured against (pure)."""

from __future__ import annotations

from bench import scenarios
from bench.cpu import Usage
from bench.report import LOGS_OFF, SHIPPED, Memory, Result, table
from bench.wrk import Measurement


def measured(requests: int, p50_ms: float = 1.0) -> Measurement:
    return Measurement(requests, 1.0, 0, 0, p50_ms, 2 * p50_ms, Usage(1.0, 0.2, 0.1, 0.0))


def pick(server: scenarios.Server, key: str, workers: int = 1) -> scenarios.Scenario:
    chosen = {s.key: s for s in scenarios.scaling_scenarios(server, workers)}
    if workers == 1:
        everything = scenarios.gateway_scenarios() if server == "gateway" else []
        chosen |= {s.key: s for s in (*scenarios.hits(server), *everything)}
    return chosen[key]


def results() -> list[Result]:
    single, batch = "hit1-base64-c8", "hit64-base64"
    return [
        Result(pick("bare", single), 1, measured(1000)),
        Result(pick("bare", batch), 1, measured(200)),
        Result(pick("gateway", single), 1, measured(500)),
        Result(pick("gateway", batch), 1, measured(50)),
        Result(pick("gateway", "miss-gateway"), 1, measured(100, p50_ms=1.5)),
        Result(scenarios.DIRECT_MISS, 1, measured(400, p50_ms=0.25)),
        Result(pick("gateway", single), 1, measured(520), LOGS_OFF),
        Result(pick("gateway", single, 2), 2, measured(900)),
        Result(pick("bare", single, 2), 2, measured(1600)),
    ]


def row(text: str, label: str, config: str = SHIPPED, server: str = "gateway") -> list[str]:
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells[:3] == [label, server, config]:
            return cells
    raise AssertionError(f"no row {label!r} {config!r}")


def test_hits_are_shares_of_the_bare_handler_with_both_absolute_figures() -> None:
    text = table(results(), Memory(1, 7000.0, 7100, 6160), (1, 2), cores=2)
    single = row(text, "1 input, hit, base64")
    assert single[4] == "500" and single[7:11] == [
        "50% of bare", "bare, same bytes: 1,000 req/s", ">= 45% of bare", "MET"
    ]  # fmt: skip
    batch = row(text, "64 inputs, all hits, base64")
    assert batch[7] == "25% of bare" and batch[10] == "MISSED"


def test_logging_miss_and_scaling_have_their_own_ratios() -> None:
    text = table(results(), None, (1, 2, 4), cores=2)
    assert row(text, "1 input, hit, base64", LOGS_OFF)[7:11] == [
        "logging costs 3.8%", "shipped logging: 500 req/s", "costs <= 10%", "MET"
    ]  # fmt: skip
    miss = row(text, "1 input, miss, via gateway, base64")
    assert miss[7] == "+1.25 ms p50" and miss[10] == "MISSED"
    scaled = next(line for line in text.splitlines() if line.startswith("| 2 "))
    assert "0.90" in scaled and "56%" in scaled  # 900 / (2 x 500); 900 / 1,600
    assert "| 4       | not measured: this machine has 2 cores" in text
