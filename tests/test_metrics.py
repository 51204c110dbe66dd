"""Metrics move by exactly what the gateway reports, keep labels bounded, and sum across workers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, CollectorRegistry

from gateway.metrics import OTHER_MODEL, Metrics, Seed, multiprocess_registry

ROOT = Path(__file__).resolve().parent.parent
MODEL = "text-embedding-3-small"
WHO = {"key": "alice", "team": "search"}


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> Metrics:
    return Metrics(registry, [MODEL])


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    sample = registry.get_sample_value(name, labels)
    assert sample is not None, f"no sample {name}{labels}"
    return sample


def test_importing_the_module_registers_nothing_on_the_default_registry() -> None:
    assert not [m.name for m in REGISTRY.collect() if m.name.startswith("gateway_")]


def test_two_instances_on_their_own_registries_do_not_collide() -> None:
    first, second = CollectorRegistry(), CollectorRegistry()
    Metrics(first, [MODEL]).cache_error("get")
    Metrics(second, [MODEL])
    assert value(first, "gateway_cache_errors_total", op="get") == 1
    assert second.get_sample_value("gateway_cache_errors_total", {"op": "get"}) is None


def test_request_counts_one_and_observes_its_duration(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    metrics.request("/v1/embeddings", MODEL, 200, 0.003)
    metrics.request("/v1/embeddings", MODEL, 200, 0.002)
    labels = {"route": "/v1/embeddings", "model": MODEL}
    assert value(registry, "gateway_requests_total", **labels, status="200") == 2
    assert value(registry, "gateway_request_duration_seconds_count", **labels) == 2
    assert value(registry, "gateway_request_duration_seconds_sum", **labels) == pytest.approx(0.005)
    assert value(registry, "gateway_request_duration_seconds_bucket", **labels, le="0.0025") == 1


def test_inputs_count_each_result_exactly(metrics: Metrics, registry: CollectorRegistry) -> None:
    metrics.inputs(MODEL, hits=5, misses=3, coalesced=2, deduplicated=1)
    metrics.inputs(MODEL, hits=1, misses=0)
    counts = {"hit": 6, "miss": 3, "coalesced": 2, "deduplicated": 1}
    for result, count in counts.items():
        got = value(registry, "gateway_embedding_inputs_total", model=MODEL, result=result)
        assert got == count


def test_tokens_split_into_hit_and_miss(metrics: Metrics, registry: CollectorRegistry) -> None:
    metrics.tokens(MODEL, "alice", "search", hit_tokens=120, miss_tokens=30)
    assert value(registry, "gateway_tokens_total", model=MODEL, **WHO, result="hit") == 120
    assert value(registry, "gateway_tokens_total", model=MODEL, **WHO, result="miss") == 30


def test_cost_records_spent_and_saved_usd(metrics: Metrics, registry: CollectorRegistry) -> None:
    metrics.cost(MODEL, "alice", "search", spent_usd=0.0006, saved_usd=0.0024)
    metrics.cost(MODEL, "alice", "search", spent_usd=0.0004, saved_usd=0.0)
    assert value(registry, "gateway_cost_usd_total", model=MODEL, **WHO) == pytest.approx(0.001)
    saved = value(registry, "gateway_cost_saved_usd_total", model=MODEL, **WHO)
    assert saved == pytest.approx(0.0024)


def test_a_key_without_a_team_is_labelled_team_none(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    metrics.cost(MODEL, "bob", "", spent_usd=0.001, saved_usd=0.0)
    assert value(registry, "gateway_cost_usd_total", model=MODEL, key="bob", team="none") > 0


SEED = Seed(
    routes=("/v1/embeddings", "/v1/models"),
    model_routes=("/v1/embeddings",),
    tenants=(("alice", "search"), ("bob", "")),
    deployments=(("openai", MODEL),),
)


@pytest.mark.parametrize(
    ("name", "labels"),
    [
        ("gateway_requests_total", {"route": "/v1/embeddings", "model": MODEL, "status": "429"}),
        ("gateway_requests_total", {"route": "/v1/models", "model": "", "status": "401"}),
        ("gateway_cost_usd_total", {"model": MODEL, "key": "bob", "team": "none"}),
        ("gateway_tokens_total", {"model": MODEL, **WHO, "result": "miss"}),
        ("gateway_embedding_inputs_total", {"model": MODEL, "result": "coalesced"}),
        ("gateway_rate_limited_total", {"scope": "key", "key": "alice"}),
        (
            "gateway_upstream_requests_total",
            {"provider": "openai", "model": MODEL, "status": "500"},
        ),
        ("gateway_cache_errors_total", {"op": "write"}),
    ],
)
def test_seeding_creates_every_known_series_at_zero(
    metrics: Metrics, registry: CollectorRegistry, name: str, labels: dict[str, str]
) -> None:
    metrics.seed(SEED)
    assert value(registry, name, **labels) == 0


def test_upstream_call_counts_call_duration_and_inputs(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    metrics.upstream_call("openai", MODEL, 200, 0.4, inputs=64)
    metrics.upstream_call("openai", MODEL, 429, 0.1, inputs=16)
    labels = {"provider": "openai", "model": MODEL}
    assert value(registry, "gateway_upstream_requests_total", **labels, status="200") == 1
    assert value(registry, "gateway_upstream_requests_total", **labels, status="429") == 1
    assert value(registry, "gateway_upstream_duration_seconds_count", **labels) == 2
    assert value(registry, "gateway_upstream_duration_seconds_sum", **labels) == pytest.approx(0.5)
    assert value(registry, "gateway_upstream_inputs_total", **labels) == 80


def test_rate_limits_and_cache_operations_are_counted(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    metrics.rate_limited("tokens", "alice")
    metrics.cache_error("set_many")
    metrics.cache_duration("get_many", 0.0004)
    assert value(registry, "gateway_rate_limited_total", scope="tokens", key="alice") == 1
    assert value(registry, "gateway_cache_errors_total", op="set_many") == 1
    assert value(registry, "gateway_cache_duration_seconds_bucket", op="get_many", le="0.0005") == 1


def test_unknown_model_is_reported_as_other(metrics: Metrics, registry: CollectorRegistry) -> None:
    metrics.request("/v1/embeddings", "made-up-model", 400, 0.001)
    metrics.inputs("made-up-model", hits=0, misses=2)
    labels = {"route": "/v1/embeddings", "model": OTHER_MODEL, "status": "400"}
    assert value(registry, "gateway_requests_total", **labels) == 1
    assert value(registry, "gateway_embedding_inputs_total", model=OTHER_MODEL, result="miss") == 2
    rendered = metrics.render()[0].decode()
    assert "made-up-model" not in rendered


def test_render_returns_prometheus_text(metrics: Metrics) -> None:
    metrics.request("/v1/embeddings", MODEL, 200, 0.01)
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    text = body.decode()
    assert "# TYPE gateway_requests_total counter" in text
    line = f'gateway_requests_total{{model="{MODEL}",route="/v1/embeddings",status="200"}} 1.0'
    assert line in text.splitlines()


WORKER = textwrap.dedent(
    """
    import sys
    from prometheus_client import CollectorRegistry
    from gateway import metrics as m
    if len(sys.argv) > 1:  # prometheus_client is imported already: switch now
        m.configure_multiprocess(sys.argv[1])
    metrics = m.Metrics(CollectorRegistry(), ["text-embedding-3-small"])
    metrics.inputs("text-embedding-3-small", hits=3, misses=1)
    metrics.upstream_call("openai", "text-embedding-3-small", 200, 0.2, inputs=1)
    """
)


def run_worker(env_dir: Path | None, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env["PYTHONPATH"] = str(ROOT)
    if env_dir is not None:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(env_dir)
    subprocess.run([sys.executable, "-c", WORKER, *args], cwd=ROOT, env=env, check=True)


def assert_summed(directory: Path, workers: int) -> None:
    scrape = multiprocess_registry(str(directory))
    labels = {"model": MODEL}
    assert value(scrape, "gateway_embedding_inputs_total", **labels, result="hit") == 3 * workers
    assert value(scrape, "gateway_embedding_inputs_total", **labels, result="miss") == workers
    upstream = {"provider": "openai", **labels}
    assert value(scrape, "gateway_upstream_duration_seconds_count", **upstream) == workers


def test_multiprocess_scrape_sums_two_worker_processes(tmp_path: Path) -> None:
    run_worker(tmp_path)
    run_worker(tmp_path)
    assert len(list(tmp_path.glob("counter_*.db"))) == 2  # one file per process
    assert_summed(tmp_path, workers=2)


def test_configure_multiprocess_works_after_prometheus_client_was_imported(
    tmp_path: Path,
) -> None:
    run_worker(None, str(tmp_path))
    run_worker(tmp_path)
    assert_summed(tmp_path, workers=2)


FORKING = textwrap.dedent(
    """
    import os, sys
    from prometheus_client import CollectorRegistry
    from gateway import metrics as m
    m.configure_multiprocess(sys.argv[1])
    metrics = m.Metrics(CollectorRegistry(), ["x"])
    metrics.cache_error("get")
    pid = os.fork()
    if pid == 0:
        metrics.cache_error("get")
        os._exit(0)
    os.waitpid(pid, 0)
    m.mark_worker_dead(pid)
    sys.stdout.write(metrics.render()[0].decode())
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_worker_writes_its_own_file_and_render_shows_the_sum(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, "-c", FORKING, str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    assert 'gateway_cache_errors_total{op="get"} 2.0' in done.stdout
    assert len(list(tmp_path.glob("counter_*.db"))) == 2
