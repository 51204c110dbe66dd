"""Every gateway metric, on an injected CollectorRegistry (nothing is created at import).

The metric names are a public interface (dashboards, alerts): rename nothing lightly.

Label hygiene keeps series bounded: a model outside ``known_models`` is reported as
``model="other"``; ``key`` and ``team`` are configured key / team NAMES (never a secret, never a
client IP); ``route`` is the route pattern, not the raw path; ``provider`` a configured name.

Several workers (``serve --workers N``) use prometheus_client's multiprocess mode, where every
process writes its values to mmap files in one directory and ``/metrics`` sums the files.
prometheus_client picks the value class once, when ``prometheus_client.values`` is imported
(``values.ValueClass`` is ``MultiProcessValue()`` if ``PROMETHEUS_MULTIPROC_DIR`` is set then,
else ``MutexValue``), and every metric constructor reads ``values.ValueClass`` when it runs.
That import happens as soon as anything imports ``gateway.metrics`` or ``gateway.app``, i.e.
before the CLI has parsed ``--workers``. So the rule for the CLI, when workers > 1:

1. create a fresh, empty temporary directory (stale ``*.db`` files would be summed in);
2. call ``configure_multiprocess(directory)`` BEFORE the first ``Metrics`` is constructed (in
   ``serve()`` before ``build_app``, and before forking workers). It exports
   ``PROMETHEUS_MULTIPROC_DIR``, so spawned workers that import prometheus_client afresh choose
   mmap values themselves, and it switches ``values.ValueClass`` in this process if it was
   imported earlier, so forked workers inherit mmap values too (they notice the new pid);
3. call ``mark_worker_dead(pid)`` (``prometheus_client.multiprocess.mark_process_dead``) when a
   worker exits; remove the directory when the supervisor exits.

``Metrics.render()`` then serves the multiprocess sum by itself (``multiprocess_registry()``);
with one worker nothing changes and the injected registry is rendered.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
OTHER_MODEL = "other"
NO_TEAM = "none"  # a key without a team: a visible label value, so a team filter can pick it

# Label values seeded at zero at start (see Seed): what each label can take in practice.
REQUEST_STATUSES = ("200", "400", "401", "403", "404", "405", "408", "413", "429", "500", "502",
                    "503", "504")  # fmt: skip
UPSTREAM_STATUSES = ("200", "400", "401", "403", "404", "408", "413", "422", "429", "500", "502",
                     "503", "504", "timeout", "unreachable", "invalid", "no_key",
                     "error")  # fmt: skip
INPUT_RESULTS = ("hit", "miss", "coalesced", "deduplicated")
RATE_LIMIT_SCOPES = ("ip", "key", "model")
CACHE_OPS = ("read", "write")

# 0.5 ms (a cached request) … 30 s (a slow upstream batch)
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0
)  # fmt: skip
# 0.1 ms … 1 s (Redis calls sit behind a timeout of about 0.25 s)
CACHE_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0
)  # fmt: skip


def configure_multiprocess(directory: str) -> None:
    """Make metrics created from now on (here and in child processes) write to ``directory``."""
    os.environ[MULTIPROC_ENV] = directory
    if not multiprocess_active():
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


def multiprocess_active() -> bool:
    return bool(getattr(values.ValueClass, "_multiprocess", False))


def multiprocess_registry(directory: str | None = None) -> CollectorRegistry:
    """A registry that sums every process's files (default: ``$PROMETHEUS_MULTIPROC_DIR``)."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return registry


def mark_worker_dead(pid: int, directory: str | None = None) -> None:
    """Drop a dead worker's live-gauge files (its counters and histograms stay in the sum)."""
    mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class Seed:
    """The label sets known at start. Every counter series over them is created at zero, so
    ``rate()`` and ``increase()`` count a series' first event too (a series that first appears
    with the value 1 has no earlier sample to rise from, and Prometheus drops that first 1)."""

    routes: tuple[str, ...]  # route patterns
    model_routes: tuple[str, ...]  # the routes whose requests name a model
    tenants: tuple[tuple[str, str], ...]  # (key name, team)
    deployments: tuple[tuple[str, str], ...]  # (provider, upstream model)


class Metrics:
    def __init__(self, registry: CollectorRegistry, known_models: Iterable[str]) -> None:
        self._known = frozenset(known_models)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._edge_metrics(registry)
        self._backend_metrics(registry)
        self._budget_metrics(registry)
        self._scrape = multiprocess_registry() if multiprocess_active() else registry

    def _edge_metrics(self, registry: CollectorRegistry) -> None:
        counter = functools.partial(Counter, registry=registry)
        histogram = functools.partial(Histogram, registry=registry)
        self._requests = counter(
            "gateway_requests_total", "HTTP requests answered.", ("route", "model", "status")
        )
        self._request_seconds = histogram(
            "gateway_request_duration_seconds",
            "Time to answer an HTTP request.",
            ("route", "model"),
            buckets=LATENCY_BUCKETS,
        )
        self._inputs = counter(
            "gateway_embedding_inputs_total",
            "Inputs by outcome: hit, miss, coalesced (joined a fetch in flight), deduplicated.",
            ("model", "result"),
        )
        self._tokens = counter(
            "gateway_tokens_total",
            "Input tokens served from the cache (hit) or fetched upstream (miss).",
            ("model", "key", "team", "result"),
        )
        self._cost = counter(
            "gateway_cost_usd_total", "USD spent on upstream calls.", ("model", "key", "team")
        )
        self._saved = counter(
            "gateway_cost_saved_usd_total",
            "USD that cache hits, deduplication and coalescing avoided spending.",
            ("model", "key", "team"),
        )
        self._rate_limited = counter(
            "gateway_rate_limited_total", "Requests refused by a rate limit.", ("scope", "key")
        )

    def _backend_metrics(self, registry: CollectorRegistry) -> None:
        counter = functools.partial(Counter, registry=registry)
        histogram = functools.partial(Histogram, registry=registry)
        self._upstream = counter(
            "gateway_upstream_requests_total",
            "Calls to upstream providers.",
            ("provider", "model", "status"),
        )
        self._upstream_seconds = histogram(
            "gateway_upstream_duration_seconds",
            "Time an upstream call took.",
            ("provider", "model"),
            buckets=LATENCY_BUCKETS,
        )
        self._upstream_inputs = counter(
            "gateway_upstream_inputs_total", "Inputs sent upstream.", ("provider", "model")
        )
        self._cache_errors = counter(
            "gateway_cache_errors_total", "Cache operations that failed.", ("op",)
        )
        self._cache_seconds = histogram(
            "gateway_cache_duration_seconds",
            "Time a cache operation took.",
            ("op",),
            buckets=CACHE_BUCKETS,
        )

    def _budget_metrics(self, registry: CollectorRegistry) -> None:
        # Several workers: the most recent write wins, which is the latest reading of the
        # shared ledger (every worker reads the same counters).
        gauge = functools.partial(Gauge, registry=registry, multiprocess_mode="mostrecent")
        self._budget_used = gauge(
            "gateway_budget_used_usd",
            "Upstream spend counted against a budget in its current period (scope: key, team).",
            ("scope", "owner"),
        )
        self._budget_limit = gauge(
            "gateway_budget_limit_usd",
            "A budget per period (scope: key, team).",
            ("scope", "owner"),
        )

    def _child(self, metric: Counter | Histogram | Gauge, *labels: str) -> Any:
        """``metric.labels(*labels)``, remembered: labels() takes a lock and builds a tuple on
        every call, and these run on every request. Label sets are bounded (see above)."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def seed(self, seed: Seed) -> None:
        """Create every known counter series at zero (see ``Seed``)."""
        models = (*sorted(self._known), "", OTHER_MODEL)
        for route in seed.routes:
            for model in models if route in seed.model_routes else ("",):
                for status in REQUEST_STATUSES:
                    self._child(self._requests, route, model, status)
        for model in models[:-2]:
            self._seed_model(model, seed)
        for provider, upstream_model in seed.deployments:
            model = self.model(upstream_model)
            self._child(self._upstream_inputs, provider, model)
            for status in UPSTREAM_STATUSES:
                self._child(self._upstream, provider, model, status)
        for op in CACHE_OPS:
            self._child(self._cache_errors, op)
        for key, _team in seed.tenants:
            for scope in RATE_LIMIT_SCOPES:
                self._child(self._rate_limited, scope, key)

    def _seed_model(self, model: str, seed: Seed) -> None:
        for result in INPUT_RESULTS:
            self._child(self._inputs, model, result)
        for key, team in seed.tenants:
            labels = (model, key, team or NO_TEAM)
            self._child(self._cost, *labels)
            self._child(self._saved, *labels)
            for result in ("hit", "miss"):
                self._child(self._tokens, *labels, result)

    def model(self, name: str) -> str:
        """The model's label value: its name if configured, "" for none, else "other"."""
        return name if name in self._known or not name else OTHER_MODEL

    def request(self, route: str, model: str, status: int | str, seconds: float) -> None:
        model = self.model(model)
        self._child(self._requests, route, model, str(status)).inc()
        self._child(self._request_seconds, route, model).observe(seconds)

    def inputs(
        self, model: str, hits: int, misses: int, coalesced: int = 0, deduplicated: int = 0
    ) -> None:
        """One request's inputs; the four results partition them (they sum to the input count):
        hit (cache), miss (fetched by this request), coalesced (joined a fetch already in flight),
        deduplicated (a repeat of another input in the same request)."""
        model = self.model(model)
        counts = {"hit": hits, "miss": misses, "coalesced": coalesced, "deduplicated": deduplicated}
        for result, count in counts.items():
            self._child(self._inputs, model, result).inc(count)

    def tokens(self, model: str, key: str, team: str, hit_tokens: int, miss_tokens: int) -> None:
        model, team = self.model(model), team or NO_TEAM
        self._child(self._tokens, model, key, team, "hit").inc(hit_tokens)
        self._child(self._tokens, model, key, team, "miss").inc(miss_tokens)

    def cost(self, model: str, key: str, team: str, spent_usd: float, saved_usd: float) -> None:
        model, team = self.model(model), team or NO_TEAM
        self._child(self._cost, model, key, team).inc(spent_usd)
        self._child(self._saved, model, key, team).inc(saved_usd)

    def upstream_call(
        self, provider: str, model: str, status: int | str, seconds: float, inputs: int
    ) -> None:
        model = self.model(model)
        self._child(self._upstream, provider, model, str(status)).inc()
        self._child(self._upstream_seconds, provider, model).observe(seconds)
        self._child(self._upstream_inputs, provider, model).inc(inputs)

    def budget(self, scope: str, owner: str, used_usd: float, limit_usd: float) -> None:
        """``owner`` is a key's id or a team's name, as configured: never a secret."""
        self._child(self._budget_used, scope, owner).set(used_usd)
        self._child(self._budget_limit, scope, owner).set(limit_usd)

    def rate_limited(self, scope: str, key: str) -> None:
        self._child(self._rate_limited, scope, key).inc()

    def cache_error(self, op: str) -> None:
        self._child(self._cache_errors, op).inc()

    def cache_duration(self, op: str, seconds: float) -> None:
        self._child(self._cache_seconds, op).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its Content-Type (it carries a charset: set it as a header)."""
        return generate_latest(self._scrape), CONTENT_TYPE_LATEST

    def inputs_by_model(self) -> dict[str, dict[str, float]]:
        """Inputs per model and result since start, summed over every worker."""
        counts: dict[str, dict[str, float]] = {}
        for family in self._scrape.collect():
            for sample in family.samples:
                if sample.name == "gateway_embedding_inputs_total":
                    by_result = counts.setdefault(sample.labels["model"], {})
                    by_result[sample.labels["result"]] = sample.value
        return counts
