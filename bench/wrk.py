"""Load from a separate process: wrk (one thread, C, epoll) driven by a generated Lua script.

Requests whose body holds the UNIQUE marker get a fresh value for it in every request (from a
per-run nonce and a counter), so those inputs are misses. `done()` prints one machine-readable
line: completed requests, duration, socket errors, non-2xx answers and the p50/p99 latency.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench import cpu
from bench.cpu import Pids, Usage
from bench.scenarios import UNIQUE

RESULT_TAG = "BENCH_RESULT"

_SCRIPT = """\
local file = assert(io.open({body_path}, "rb"))
local template = file:read("*a")
file:close()
wrk.method = "POST"
wrk.body = template
wrk.headers["Content-Type"] = "application/json"
{auth}
{dynamic}
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("{tag} %d %d %d %d %.1f %.1f\\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""

_DYNAMIC = """\
local counter = 0
function request()
  counter = counter + 1
  local body = template:gsub("{marker}", "{nonce}-" .. counter)
  return wrk.format(nil, nil, nil, body)
end
"""


def _lua_string(value: str) -> str:
    if any(c in value for c in '"\\\n\r'):
        raise ValueError(f"not embeddable in a Lua string: {value!r}")
    return f'"{value}"'


def lua_script(body_path: Path, token: str | None, dynamic: bool) -> str:
    auth = f'wrk.headers["Authorization"] = {_lua_string("Bearer " + token)}' if token else ""
    nonce = secrets.token_hex(6)  # fresh per wrk run: warm-up misses never become hits later
    fresh = _DYNAMIC.format(marker=UNIQUE, nonce=nonce) if dynamic else ""
    return _SCRIPT.format(
        body_path=_lua_string(str(body_path)), auth=auth, dynamic=fresh, tag=RESULT_TAG
    )


@dataclass(frozen=True, slots=True)
class Measurement:
    requests: int
    seconds: float
    errors: int  # socket errors and timeouts
    bad_status: int  # answers that were not 2xx/3xx
    p50_ms: float
    p99_ms: float
    cpu: Usage

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        return self.requests > 0 and self.errors == 0 and self.bad_status == 0


def parse_result(output: str) -> tuple[int, float, int, int, float, float]:
    for line in output.splitlines():
        if line.startswith(RESULT_TAG):
            fields = line.split()[1:]
            requests, duration_us, errors, bad = (int(f) for f in fields[:4])
            p50_us, p99_us = float(fields[4]), float(fields[5])
            return requests, duration_us / 1e6, errors, bad, p50_us / 1000, p99_us / 1000
    raise RuntimeError(f"wrk printed no result line:\n{output}")


def wrk_binary() -> str | None:
    return shutil.which("wrk")


@dataclass(frozen=True, slots=True)
class Load:
    url: str
    body: bytes
    concurrency: int
    token: str | None
    timeout_s: int
    threads: int = 1  # wrk's; one core of load goes a long way on loopback


def run(load: Load, duration: float, workdir: Path, server_pids: Pids) -> Measurement:
    """Drive `load` for `duration` seconds (bounded: wrk stops itself, and is killed if not)."""
    if not load.url.startswith("http://127.0.0.1:"):
        raise ValueError(f"wrk only targets loopback here: {load.url}")
    binary = wrk_binary()
    if binary is None:
        raise RuntimeError("wrk is not installed (apt-get install -y wrk)")
    body_path = workdir / f"body-{secrets.token_hex(4)}.json"
    body_path.write_bytes(load.body)
    script = body_path.with_suffix(".lua")
    script.write_text(lua_script(body_path, load.token, UNIQUE.encode() in load.body))
    argv = [binary, f"-t{load.threads}", f"-c{load.concurrency}", f"-d{max(1, round(duration))}s"]
    argv += [f"--timeout={load.timeout_s}s", "-s", str(script), load.url]
    before = cpu.sample(server_pids)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 120, check=False)
    after = cpu.sample(server_pids)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    requests, seconds, errors, bad, p50, p99 = parse_result(done.stdout)
    return Measurement(
        requests=requests,
        seconds=seconds,
        errors=errors,
        bad_status=bad,
        p50_ms=p50,
        p99_ms=p99,
        cpu=cpu.usage(before, after),
    )
