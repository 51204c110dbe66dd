"""The processes a benchmark run starts and stops: each one by its own pid, on loopback only."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from gateway.settings import expand_env, hash_key, parse
from tests.support.redis_server import free_port

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config.yaml"
HOST = "127.0.0.1"
BENCH_KEY = "sk-gw-bench-key"
INTERNAL_TOKEN = "bench-internal-token"
MODEL = "text-embedding-3-small"
DIMENSIONS = 1536
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
# Variables that would change what the gateway or the fake upstream do behind our back.
_SCRUBBED_PREFIXES = ("GATEWAY_", "OPENAI_", "NANOGPT_", "REDIS_URL", "PROMETHEUS_MULTIPROC")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Never through a proxy from the environment: every request of the bench stays on loopback.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def child_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def upstream_only_config(upstream_url: str, redis_url: str, api_key: str) -> dict[str, Any]:
    """The shipped config.yaml pointed at a fake upstream and a Redis. The in-process `local`
    provider (and the models deployed only on it) is left out: loading its model would slow
    startup and measure nothing here."""
    raw: dict[str, Any] = expand_env(yaml.safe_load(CONFIG.read_text(encoding="utf-8")), {})
    local = {name for name, spec in raw["providers"].items() if spec.get("type") == "local"}
    raw["providers"] = {
        name: {**spec, "base_url": upstream_url, "api_key": api_key}
        for name, spec in raw["providers"].items()
        if name not in local
    }
    raw["models"] = {
        name: spec
        for name, spec in raw["models"].items()
        if not {d["provider"] for d in spec["deployments"]} & local
    }
    raw["cache"]["redis_url"] = redis_url
    return raw


def gateway_config(upstream_url: str, redis_url: str, *, logs: bool = True) -> dict[str, Any]:
    """The bench's config: upstream only, auth on; the shipped log level (info: one access
    line per request), or warnings only with `logs=False`."""
    raw = upstream_only_config(upstream_url, redis_url, "sk-bench-upstream")
    if not logs:
        raw["server"]["log_level"] = "warning"
    raw["auth"]["keys"] = [{"name": "bench", "sha256": hash_key(BENCH_KEY)}]
    raw["auth"]["internal_token"] = INTERNAL_TOKEN
    settings = parse(raw)  # fail here, with the key's path, rather than in a subprocess
    for name, provider in settings.providers.items():
        if not provider.base_url.startswith(f"http://{HOST}:"):
            raise RuntimeError(f"provider {name} would leave loopback: {provider.base_url}")
    return raw


def write_gateway_config(
    path: Path, upstream_url: str, redis_url: str, *, logs: bool = True
) -> Path:
    raw = gateway_config(upstream_url, redis_url, logs=logs)
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


class Service:
    """One subprocess this run started, with its log; stopped by its own pid only."""

    def __init__(self, name: str, argv: list[str], log_dir: Path) -> None:
        self.name = name
        self.log = log_dir / f"{name}.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                argv,
                cwd=REPO,
                env=child_environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal's ^C reaches us, and we stop it in order
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited ({self.process.returncode}):\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def tree(self) -> list[int]:
        """This process and its descendants (a supervisor's workers)."""
        return process_tree(self.pid)

    def stop(self) -> None:
        """SIGTERM (a supervisor passes it on to its workers), then SIGKILL what is left."""
        if self.process.poll() is not None:
            return
        descendants = [pid for pid in self.tree() if pid != self.pid]
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for pid in descendants:
            _kill_if_alive(pid)


def _kill_if_alive(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()  # fields from `state` on; comm may hold spaces


def cpu_seconds(pid: int) -> float:
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime + stime


def process_tree(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                parents[int(entry.name)] = int(fields[1])
    tree, frontier = [root], [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        tree += children
        frontier = children
    return tree


def listeners(port: int) -> int:
    """How many sockets listen on a loopback port (one per SO_REUSEPORT worker)."""
    wanted = f":{port:04X}"
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[1].endswith(wanted) and fields[3] == "0A":  # 0A: LISTEN
                count += 1
    return count


def urlopen(request: str | urllib.request.Request, timeout: float) -> Any:
    """`urllib.request.urlopen`, loopback only and never through a proxy."""
    url = request if isinstance(request, str) else request.full_url
    if not url.startswith(f"http://{HOST}:"):
        raise ValueError(f"the bench only calls {HOST}: {url}")
    return _DIRECT.open(request, timeout=timeout)


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urlopen(url, timeout) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def wait_until_listening(service: Service, port: int, count: int = 1) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        service.check_alive()
        if listeners(port) >= count:
            return
        time.sleep(0.05)
    raise RuntimeError(f"{service.name} did not listen on {port} in time:\n{service.tail()}")


def start_upstream(log_dir: Path) -> tuple[Service, str]:
    port = free_port()
    argv = [sys.executable, "-m", "tests.support.fake_upstream", "--host", HOST]
    argv += ["--port", str(port), "--dims", f"{MODEL}={DIMENSIONS}"]
    service = Service("fake-upstream", argv, log_dir)
    wait_until_listening(service, port)
    return service, f"http://{HOST}:{port}/v1"


def start_gateway(config: Path, workers: int, log_dir: Path) -> tuple[Service, str]:
    port = free_port()
    argv = [sys.executable, "-m", "gateway", "serve", "--config", str(config), "--host", HOST]
    argv += ["--port", str(port), "--workers", str(workers)]
    service = Service(f"gateway-{workers}w", argv, log_dir)
    wait_until_listening(service, port, workers)
    url = f"http://{HOST}:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    while http_status(f"{url}/readyz") != 200:
        service.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{service.name} never became ready:\n{service.tail()}")
        time.sleep(0.05)
    return service, url


def start_bare(responses: Path, workers: int, log_dir: Path) -> tuple[list[Service], str]:
    """`workers` bare servers sharing one port with SO_REUSEPORT, like the gateway's workers."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.bare", "--host", HOST, "--port", str(port)]
    argv += ["--responses", str(responses)]
    services = [Service(f"bare-{workers}w-{i}", argv, log_dir) for i in range(workers)]
    for service in services:
        service.check_alive()
    wait_until_listening(services[0], port, workers)
    return services, f"http://{HOST}:{port}"
