"""Profile the gateway's hot paths: `python -m bench.hotspots [--seconds 10] [SCENARIO ...]`.

Starts the same stack as `bench.run` (1 worker), drives a scenario with wrk and samples the
worker with py-spy (`pip install py-spy`) meanwhile, then prints where the samples were: self
time per function, inclusive time per function, and self time per module.

py-spy's own idle detection is unreliable here (it can pair Python threads with the wrong OS
threads, calling a busy event loop idle and a parked thread-pool worker active), so every
sample is recorded (`--idle`) and only parked thread-pool workers are left out. The worker is
CPU-bound in the default scenarios (bench.run's CPU column says ~1.0), so the event loop's own
idle time, which shows as self time of `run_app` (uvloop's C loop, socket I/O), is small there.
Fine-grained attribution differs between py-spy's default (pausing) sampling and
`--nonblocking` (e.g. time inside short C calls lands on different Python frames); trust
the inclusive shares of whole stages more than the self time of one small function.
Scenario names are `bench.run`'s keys, e.g. hit1-base64-c1, hit64-base64 (the default pair),
hit2048-base64, miss-gateway.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from bench import cpu, scenarios, stack, wrk
from bench.scenarios import Scenario
from bench.setup import probe, warm
from tests.support.redis_server import RedisServer

DEFAULT = ("hit1-base64-c1", "hit64-base64")
# A leaf frame that means "parked, waiting for work" (the C wait below it has no frame).
_PARKED = ("_worker (concurrent/futures/thread.py",)
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^():]+)(?::\d+)?\)$")


def _package(frame: str) -> str:
    match = _FRAME.match(frame)
    if match is None:
        return frame
    file = match["file"]
    head = file.split("/", 1)[0]
    return file.rsplit(".", 1)[0] if head == "gateway" else head.removesuffix(".py")


def _percent_table(title: str, counts: Counter[str], total: int, top: int) -> list[str]:
    lines = [f"  {title}"]
    for name, count in counts.most_common(top):
        lines.append(f"    {100 * count / total:5.1f}%  {name}")
    return lines


def summarise(raw: str, top: int = 15) -> str:
    """py-spy's raw (collapsed) stacks → self, inclusive and per-package shares."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = parked = 0
    for line in raw.splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack_text.split(";")
        if frames[-1].startswith(_PARKED):
            parked += count
            continue
        total += count
        own[frames[-1]] += count
        packages[_package(frames[-1])] += count
        for frame in set(frames):
            inclusive[frame] += count
    if total == 0:
        return "  no samples"
    lines = [f"  {total} samples ({parked} of parked thread-pool workers left out)"]
    lines += _percent_table("self time, by function", own, total, top)
    lines += _percent_table("inclusive time, by function", inclusive, total, top + 10)
    lines += _percent_table("self time, by module", packages, total, top)
    return "\n".join(lines)


def record(scenario: Scenario, url: str, pid: int, workdir: Path, args: argparse.Namespace) -> Path:
    """Samples the worker with py-spy while wrk drives the scenario; the collapsed stacks."""
    seconds = args.seconds
    raw = workdir / f"{scenario.key}.txt"
    load = wrk.Load(url, scenario.body, scenario.concurrency, stack.INTERNAL_TOKEN, 60)
    loader = threading.Thread(
        target=wrk.run, args=(load, seconds + 2, workdir, lambda: [pid]), daemon=True
    )
    loader.start()
    argv = ["py-spy", "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "250"]
    argv += ["--format", "raw", "--function", "--idle", "--output", str(raw)]
    argv += ["--native"] if args.native else []
    argv += ["--nonblocking"] if args.nonblocking else []
    spy = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    loader.join(timeout=seconds + 120)
    if spy.returncode != 0:
        raise RuntimeError(f"py-spy failed ({spy.returncode}): {spy.stderr.strip()}")
    return raw


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hotspots", description=__doc__)
    parser.add_argument("scenarios", nargs="*", default=list(DEFAULT))
    parser.add_argument("--seconds", type=int, default=10, help="sampled per scenario (10)")
    parser.add_argument("--native", action="store_true", help="include C frames (slower)")
    parser.add_argument(
        "--nonblocking",
        action="store_true",
        help="sample without pausing the worker (less overhead, occasionally torn stacks)",
    )
    parser.add_argument(
        "--save", type=Path, help="keep py-spy's collapsed stacks here (flamegraph.pl input)"
    )
    args = parser.parse_args(argv)
    if shutil.which("py-spy") is None or wrk.wrk_binary() is None:
        print("needs py-spy (pip install py-spy) and wrk (apt-get install -y wrk)", file=sys.stderr)
        return 2
    chosen = {s.key: s for s in scenarios.gateway_scenarios()}
    unknown = [name for name in args.scenarios if name not in chosen]
    if unknown:
        print(f"unknown scenarios {unknown}; choose from {sorted(chosen)}", file=sys.stderr)
        return 2
    args.seconds = max(1, min(args.seconds, 120))
    with tempfile.TemporaryDirectory(prefix="gateway-profile-") as tmp:
        run_all([chosen[name] for name in args.scenarios], Path(tmp), args)
    return 0


def run_all(chosen: Sequence[Scenario], workdir: Path, args: argparse.Namespace) -> None:
    redis_server = RedisServer()
    redis_server.start()
    upstream: stack.Service | None = None
    gateway: stack.Service | None = None
    try:
        upstream, upstream_url = stack.start_upstream(workdir)
        config = stack.write_gateway_config(
            workdir / "gateway.yaml", upstream_url, redis_server.url
        )
        gateway, base = stack.start_gateway(config, 1, workdir)
        url = f"{base}/v1/embeddings"
        warm(url)
        cpu.place(gateway.tree, isolate=True)  # as bench.run measures 1 worker
        for scenario in chosen:
            probe(url, scenario, stack.INTERNAL_TOKEN)
            raw = record(scenario, url, gateway.pid, workdir, args)
            if args.save is not None:
                args.save.mkdir(parents=True, exist_ok=True)
                shutil.copy(raw, args.save / raw.name)
            print(f"{scenario.key} ({scenario.label}, concurrency {scenario.concurrency})")
            print(summarise(raw.read_text(encoding="utf-8")), flush=True)
    finally:
        for service in (gateway, upstream):
            if service is not None:
                service.stop()
        redis_server.stop()


if __name__ == "__main__":
    sys.exit(main())
