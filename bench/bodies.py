"""What the parse process spends on one large body: `python -m bench.bodies [--repeat 9]`.

Each row is the best of `--repeat` runs of `bodyparse.lighten` (the parse process's whole work
on a body once read) for a body shape: token lists read from the bytes by `tokenscan`, the same
body through the JSON parser (the path it declines to), and the bodies refused unparsed for
holding more values than any valid request. CPU time on one core; no I/O.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from collections.abc import Callable

import orjson

from gateway import bodyparse

MODEL = "text-embedding-3-small"


def ids_body(lists: int, per_list: int = 3000) -> bytes:
    row = list(range(1000, 1000 + per_list))
    return orjson.dumps({"model": MODEL, "input": [row] * lists})


def best_ms(work: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        work()
        best = min(best, time.process_time() - started)
    return 1000 * best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    repeat = parser.parse_args().repeat
    largest = ids_body(199)  # 597,000 ids: the most a body may hold and still be parsed
    spaced = json.dumps(orjson.loads(largest)).encode()
    medium, huge = ids_body(48, 4096), ids_body(2048)
    scanned, parsed = bodyparse.lighten, bodyparse.parsed_light
    rows = [
        ("597,000 ids (3 MB), read from the bytes", largest, scanned),
        ("597,000 ids (3 MB), through the JSON parser", largest, parsed),
        ("597,000 ids as json.dumps writes them, read from the bytes", spaced, scanned),
        ("196,608 ids (1.2 MB), read from the bytes", medium, scanned),
        ("196,608 ids (1.2 MB), through the JSON parser", medium, parsed),
        ("6,144,000 ids (31 MB), refused unparsed", huge, scanned),
        ("6,144,000 ids (31 MB), through the JSON parser", huge, parsed),
    ]
    width = max(len(name) for name, _, _ in rows)
    print(f"{'body':<{width}}  CPU ms (best of {repeat})")
    for name, body, lighten in rows:
        took = best_ms(functools.partial(lighten, body), repeat)
        print(f"{name:<{width}}  {took:8.1f}", flush=True)


if __name__ == "__main__":
    main()
