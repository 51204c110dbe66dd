"""The gateway as a real process: several workers share a port and one set of metrics, and
SIGTERM lets in-flight requests finish."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.support.background import BackgroundLoop
from tests.support.fake_upstream import FakeUpstream
from tests.support.redis_server import RedisServer, free_port
from tests.support.stack import write_config

SMALL = "text-embedding-3-small"


@pytest.fixture
def upstream(background: BackgroundLoop) -> Iterator[FakeUpstream]:
    fake = FakeUpstream()
    background.run(fake.start())
    yield fake
    background.run(fake.stop())


def start_gateway(config: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    log = config.with_suffix(".log")
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway",
                "serve",
                "--config",
                str(config),
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    wait_until_up(port, process, log)
    return process


def wait_until_up(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(log.read_text())
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("gateway did not start")


def requests_total(port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "gateway_requests_total" and s.labels["route"] == "/v1/embeddings"
    )


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=30)


def test_two_workers_share_the_port_and_every_scrape_shows_both(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    port = free_port()
    gateway = start_gateway(write_config(tmp_path / "c.yaml", upstream.base_url, ""), port, 2)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/v1") as client:
            for i in range(40):  # new connections spread over both workers
                client.post(
                    "/embeddings",
                    json={"model": SMALL, "input": f"t{i}"},
                    headers={"Connection": "close"},
                )
        assert {requests_total(port) for _ in range(6)} == {40}
    finally:
        assert stop(gateway) == 0


def test_sigterm_lets_an_in_flight_request_finish(upstream: FakeUpstream, tmp_path: Path) -> None:
    port = free_port()
    gateway = start_gateway(write_config(tmp_path / "c.yaml", upstream.base_url, ""), port, 1)
    upstream.set_delay(1.0)
    result: list[int] = []
    body = {"model": SMALL, "input": "slow"}
    url = f"http://127.0.0.1:{port}/v1/embeddings"
    thread = threading.Thread(
        target=lambda: result.append(httpx.post(url, json=body, timeout=10).status_code)
    )
    thread.start()
    while upstream.in_flight == 0:
        time.sleep(0.01)
    assert stop(gateway) == 0
    thread.join()
    assert result == [200]


def metric_sum(port: int, name: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    return sum(
        s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name
    )


def test_across_two_workers_metrics_usage_and_headers_agree(
    upstream: FakeUpstream, tmp_path: Path, redis_server: RedisServer
) -> None:
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushdb()
    port = free_port()
    config = write_config(tmp_path / "c.yaml", upstream.base_url, redis_server.url)
    gateway = start_gateway(config, port, 2)
    try:
        spent = saved = 0.0
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/v1") as client:
            for i in range(30):  # repeated and new inputs, on fresh connections
                body = {"model": SMALL, "input": [f"text {i % 7}", f"text {i % 3} more"]}
                response = client.post("/embeddings", json=body, headers={"Connection": "close"})
                spent += float(response.headers["x-gateway-cost-usd"])
                saved += float(response.headers["x-gateway-saved-usd"])
            time.sleep(1.5)  # the workers write usage counters once a second
            rows = [m for k in client.get("/usage").json()["keys"] for m in k["models"]]
        assert sum(r["cost_usd"] for r in rows) == pytest.approx(spent)
        assert sum(r["saved_usd"] for r in rows) == pytest.approx(saved)
        assert sum(r["requests"] for r in rows) == 30
        assert metric_sum(port, "gateway_cost_usd_total") == pytest.approx(spent)
        assert metric_sum(port, "gateway_cost_saved_usd_total") == pytest.approx(saved)
    finally:
        assert stop(gateway) == 0


def test_two_workers_on_sqlite_agree_on_keys_and_usage(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    port = free_port()
    admin = {"Authorization": "Bearer admin-token"}
    overrides = {"auth": {"internal_token": "admin-token"}}
    config = write_config(tmp_path / "c.yaml", upstream.base_url, "", overrides)
    gateway = start_gateway(config, port, 2)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/v1", timeout=10) as client:
            keys = "/organization/api_keys"
            key = client.post(keys, json={"name": "alice"}, headers=admin).json()
            time.sleep(1.0)  # each worker polls the key version twice a second
            fresh = {"Connection": "close", "Authorization": f"Bearer {key['value']}"}
            body = {"model": SMALL, "input": "hi"}
            statuses = {client.post("/embeddings", json=body, headers=fresh).status_code}
            for _ in range(19):  # new connections spread over both workers
                statuses.add(client.post("/embeddings", json=body, headers=fresh).status_code)
            assert statuses == {200}
            time.sleep(1.5)  # usage is written once a second
            usage = client.get("/usage", headers=admin | {"Connection": "close"}).json()
            assert usage["keys"][0]["models"][0]["requests"] == 20
            client.delete(f"{keys}/{key['id']}", headers=admin)
            time.sleep(1.0)
            refused = {client.post("/embeddings", json=body, headers=fresh).status_code}
            for _ in range(9):
                refused.add(client.post("/embeddings", json=body, headers=fresh).status_code)
            assert refused == {401}
    finally:
        assert stop(gateway) == 0


def test_two_workers_share_the_embedded_sqlite_cache(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    port = free_port()
    gateway = start_gateway(write_config(tmp_path / "c.yaml", upstream.base_url, ""), port, 2)
    body = {"model": SMALL, "input": "written by one worker, read by both"}
    fresh = {"Connection": "close"}  # new connections spread over both workers
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/v1") as client:
            deadline = time.monotonic() + 10
            while client.post("/embeddings", json=body).headers["x-cache"] != "HIT":
                assert time.monotonic() < deadline  # the first write lands in the file
            fetched = upstream.inputs_embedded
            states = [
                client.post("/embeddings", json=body, headers=fresh).headers["x-cache"]
                for _ in range(20)
            ]
        assert states == ["HIT"] * 20
        assert upstream.inputs_embedded == fetched
    finally:
        assert stop(gateway) == 0
