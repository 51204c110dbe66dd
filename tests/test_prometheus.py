"""The shipped Grafana dashboard against a real Prometheus scraping two gateway workers: every
query returns data, and the cost, 429 and 5xx panels count exactly what the traffic produced."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.support.fake_upstream import FakeUpstream
from tests.support.redis_server import RedisServer, free_port
from tests.support.stack import write_config
from tests.test_dashboard import DASHBOARD, panel_exprs
from tests.test_workers import SMALL, start_gateway, stop, upstream

__all__ = ["upstream"]  # the fixture, imported for its name

RANGE = "10m"  # wider than the whole test: increase() over it spans every sample
KEYS = {"alpha": "search", "beta": "ads", "gamma": ""}  # gamma has no team
THROTTLED = "gamma"
VARIABLES = re.compile(r"\$(model|key|team)\b")


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]

    def query(self, expr: str, at: float) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr, "time": at})
        body = response.json()
        assert body["status"] == "success", f"{expr}: {body}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def value(self, expr: str, at: float) -> float:
        result = self.query(expr, at)
        assert len(result) == 1, f"{expr}: {result}"
        return float(result[0]["value"][1])

    def last_scrape(self) -> float:
        return self.value('timestamp(up{job="gateway"})', time.time())

    def wait_for_scrapes(self, count: int) -> float:
        """Wait until ``count`` scrapes have happened after now; the last one's timestamp."""
        first = self.last_scrape()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            latest = self.last_scrape()
            if latest >= first + count - 0.5:
                return latest
            time.sleep(0.2)
        raise RuntimeError("prometheus stopped scraping")


@pytest.fixture
def gateway(upstream: FakeUpstream, redis_server: RedisServer, tmp_path: Path) -> Iterator[int]:
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushdb()
    keys = [
        {"name": name, "sha256": _sha(name), "team": team}
        | (
            {"limits": {"requests_per_second": 0.001, "requests_burst": 3}}
            if name == "gamma"
            else {}
        )
        | ({"budget": {"usd": 100, "period": "monthly"}} if name == "alpha" else {})
        for name, team in KEYS.items()
    ]
    overrides = {
        "auth": {"keys": keys},
        "upstream": {"base_delay": 0.001, "max_delay": 0.002},
    }
    port = free_port()
    config = write_config(tmp_path / "c.yaml", upstream.base_url, redis_server.url, overrides)
    process = start_gateway(config, port, 2)
    yield port
    assert stop(process) == 0


@pytest.fixture
def prometheus(gateway: int, tmp_path: Path) -> Iterator[Prometheus]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("Debian's prometheus package is needed (bash .ci/run installs it)")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(_scrape_config(gateway))
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = Prometheus(f"http://127.0.0.1:{port}", process)
    try:
        _wait_until_scraped(server)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=10)


def _sha(name: str) -> str:
    return hashlib.sha256(_secret(name).encode()).hexdigest()


def _secret(name: str) -> str:
    return f"sk-test-{name}-secret"


def _scrape_config(port: int) -> str:
    job = {"job_name": "gateway", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
    return json.dumps({"global": {"scrape_interval": "1s"}, "scrape_configs": [job]})


def _wait_until_scraped(server: Prometheus) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if server.query('up{job="gateway"} == 1', time.time()):
                return
        except (httpx.TransportError, json.JSONDecodeError):
            pass
        if server.process.poll() is not None:
            raise RuntimeError("prometheus exited")
        time.sleep(0.2)
    raise RuntimeError("prometheus never scraped the gateway")


@dataclass
class Traffic:
    spent: float = 0.0
    saved: float = 0.0
    throttled: int = 0
    server_errors: int = 0
    upstream_500s: int = 0


def send(client: httpx.Client, key: str, text: str, traffic: Traffic) -> None:
    headers = {"Authorization": f"Bearer {_secret(key)}", "Connection": "close"}
    response = client.post("/embeddings", json={"model": SMALL, "input": text}, headers=headers)
    traffic.spent += float(response.headers.get("x-gateway-cost-usd", 0))
    traffic.saved += float(response.headers.get("x-gateway-saved-usd", 0))
    traffic.throttled += response.status_code == 429
    traffic.server_errors += response.status_code >= 500


def mixed_traffic(port: int, upstream: FakeUpstream, round_: int, traffic: Traffic) -> None:
    """Misses and hits for every key, 429s for the throttled one, one request that fails."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}/v1", timeout=30) as client:
        for key in KEYS:
            for i in range(3):
                send(client, key, f"{key} text {i}", traffic)  # round 0 misses, round 1 hits
        upstream.fail_next(40)
        before = upstream.request_count
        send(client, "alpha", f"never embedded {round_}", traffic)
        traffic.upstream_500s += upstream.request_count - before
        upstream.reset()


def dashboard_queries() -> list[str]:
    exprs = panel_exprs(json.loads(DASHBOARD.read_text())["panels"])
    return [
        VARIABLES.sub(".*", expr).replace("$__range", RANGE).replace("$__rate_interval", RANGE)
        for expr in exprs
    ]


def test_every_panel_returns_data_and_counts_each_event_from_the_first(
    gateway: int, prometheus: Prometheus, upstream: FakeUpstream
) -> None:
    traffic = Traffic()
    for round_ in range(2):  # two rounds: histograms need two samples too
        mixed_traffic(gateway, upstream, round_, traffic)
        at = prometheus.wait_for_scrapes(2)
    assert traffic.throttled >= 3 and traffic.server_errors == 2  # the traffic did what it should
    increase = f"[{RANGE}]))"
    spent = prometheus.value(f"sum(increase(gateway_cost_usd_total{increase}", at)
    saved = prometheus.value(f"sum(increase(gateway_cost_saved_usd_total{increase}", at)
    limited = f'sum(increase(gateway_rate_limited_total{{key="{THROTTLED}"}}{increase}'
    errors = f'sum(increase(gateway_requests_total{{status=~"5.."}}{increase}'
    assert spent == pytest.approx(traffic.spent, rel=1e-9)
    assert saved == pytest.approx(traffic.saved, rel=1e-9)
    assert prometheus.value(limited, at) == traffic.throttled
    assert prometheus.value(errors, at) == traffic.server_errors
    upstream_500s = f'sum(increase(gateway_upstream_requests_total{{status="500"}}{increase}'
    assert prometheus.value(upstream_500s, at) == traffic.upstream_500s  # the provider's status
    teams = prometheus.query("count by (team) (gateway_cost_usd_total)", at)
    assert {series["metric"]["team"] for series in teams} == {"search", "ads", "none"}
    empty = [expr for expr in dashboard_queries() if not prometheus.query(expr, at)]
    assert not empty, f"panels without data: {empty}"
