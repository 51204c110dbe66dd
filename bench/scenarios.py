"""What each scenario sends, to which server, and what a probe of it must answer (pure)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import orjson

MODEL = "text-embedding-3-small"
# wrk replaces this marker in every request with a fresh value: those inputs are misses.
UNIQUE = "@UNIQUE@"
SENTENCE = "the quick brown fox jumps over the lazy dog while the gateway answers from its cache"

Server = Literal["gateway", "bare", "upstream"]
Encoding = Literal["float", "base64"]


def text(group: str, index: int) -> str:
    """One input: a short English sentence (20 to 23 cl100k tokens)."""
    return f"{group} {index}: {SENTENCE}"


def texts(group: str, count: int) -> list[str]:
    return [text(group, i) for i in range(count)]


def body(inputs: str | list[str], encoding: Encoding) -> bytes:
    return orjson.dumps({"model": MODEL, "input": inputs, "encoding_format": encoding})


def describe() -> str:
    return f"{MODEL} (1536 dims); each input an English sentence, ~100 chars, 20-23 tokens"


SINGLE = text("single", 0)
BATCH_64 = texts("batch64", 64)
BATCH_2048 = texts("batch2048", 2048)
HALF_HOT = texts("half", 32)
HALF_COLD = [f"{t} {UNIQUE}" for t in texts("fresh", 32)]
MISS = f"{text('miss', 0)} {UNIQUE}"
WARM = (SINGLE, *BATCH_64, *BATCH_2048, *HALF_HOT)


@dataclass(frozen=True, slots=True)
class Scenario:
    key: str  # what targets and comparisons refer to
    label: str
    server: Server
    body: bytes
    concurrency: int
    expect: str  # the x-cache a probe must answer ("" for servers that do not say)
    timeout_s: int = 10

    @property
    def dynamic(self) -> bool:
        return UNIQUE.encode() in self.body


def single_hits(server: Server) -> list[Scenario]:
    expect = "HIT" if server == "gateway" else ""
    return [
        Scenario(f"hit1-{enc}-c{c}", f"1 input, hit, {enc}", server, body(SINGLE, enc), c, expect)
        for enc in ("float", "base64")
        for c in (1, 8)
    ]


def batch_hits(server: Server) -> list[Scenario]:
    expect = "HIT" if server == "gateway" else ""
    return [
        *(
            Scenario(f"hit64-{enc}", f"64 inputs, all hits, {enc}", server,
                     body(BATCH_64, enc), 8, expect)
            for enc in ("float", "base64")
        ),
        *(
            Scenario(f"hit2048-{enc}", f"2048 inputs, all hits, {enc}", server,
                     body(BATCH_2048, enc), 1, expect, timeout_s=60)
            for enc in ("float", "base64")
        ),
    ]  # fmt: skip


def hits(server: Server) -> list[Scenario]:
    """Every all-hit scenario: what the bare handler replays, byte for byte."""
    return [*single_hits(server), *batch_hits(server)]


def gateway_scenarios() -> list[Scenario]:
    """Every gateway scenario, in the order they run."""
    return [
        *hits("gateway"),
        Scenario(
            "half64",
            "64 inputs, 32 hits + 32 misses, base64",
            "gateway",
            body([*HALF_HOT, *HALF_COLD], "base64"),
            1,
            "PARTIAL",
        ),
        Scenario(
            "miss-gateway",
            "1 input, miss, via gateway, base64",
            "gateway",
            body(MISS, "base64"),
            1,
            "MISS",
        ),
    ]


# Scaling: per worker, as many connections as one worker gets in the 1-worker rows.
SCALING_KEYS = ("hit1-base64-c8", "hit64-base64")


def scaling_scenarios(server: Server, workers: int) -> list[Scenario]:
    chosen = [s for s in hits(server) if s.key in SCALING_KEYS]
    if workers == 1:
        return chosen
    return [replace(s, concurrency=s.concurrency * workers) for s in chosen]


DIRECT_MISS = Scenario(
    "miss-direct",
    "1 input, miss, straight to upstream, base64",
    "upstream",
    body(MISS, "base64"),
    1,
    "",
)
