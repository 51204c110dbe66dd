"""The dashboard only queries metrics the gateway exports, and every deploy manifest parses."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from gateway.metrics import Metrics

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "embeddings-gateway.json"
METRIC = re.compile(r"gateway_[a-z_]+")
HISTOGRAM_SUFFIX = re.compile(r"_(bucket|sum|count)$")
YAML_FILES = sorted(
    [
        *DEPLOY.glob("k8s/*.yaml"),
        DEPLOY / "docker-compose.yml",
        DEPLOY / "prometheus.yml",
        *DEPLOY.glob("grafana/provisioning/*/*.yml"),
    ]
)


def exported_names() -> set[str]:
    """Names as queried: prometheus_client drops `_total` from a counter's family name."""
    registry = CollectorRegistry()
    Metrics(registry, ["text-embedding-3-small"])
    names = set()
    for family in registry.collect():
        names.add(family.name + "_total" if family.type == "counter" else family.name)
    return names


def panel_exprs(panels: list[dict[str, Any]]) -> Iterator[str]:
    for panel in panels:
        yield from panel_exprs(panel.get("panels", []))  # rows may nest panels
        for target in panel.get("targets", []):
            yield target["expr"]


def queried_names() -> set[str]:
    exprs = list(panel_exprs(json.loads(DASHBOARD.read_text())["panels"]))
    assert exprs, "the dashboard has no queries"
    names = {name for expr in exprs for name in METRIC.findall(expr)}
    exported = exported_names()
    return {name if name in exported else HISTOGRAM_SUFFIX.sub("", name) for name in names}


def test_every_metric_on_the_dashboard_is_exported() -> None:
    missing = queried_names() - exported_names()
    assert not missing, f"the dashboard queries metrics nobody exports: {sorted(missing)}"


def test_the_dashboard_covers_spend_savings_hits_upstream_and_rate_limits() -> None:
    wanted = {
        "gateway_cost_usd_total",
        "gateway_cost_saved_usd_total",
        "gateway_embedding_inputs_total",
        "gateway_upstream_duration_seconds",
        "gateway_upstream_requests_total",
        "gateway_rate_limited_total",
        "gateway_requests_total",
        "gateway_request_duration_seconds",
    }
    assert wanted <= queried_names()


def test_panel_ids_are_unique() -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_manifest_parses(path: Path) -> None:
    documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    assert documents and all(isinstance(doc, dict) for doc in documents)


def test_every_kubernetes_manifest_has_a_kind() -> None:
    for path in DEPLOY.glob("k8s/*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            assert {"apiVersion", "kind", "metadata"} <= doc.keys(), path.name


def test_the_configmap_carries_the_repository_models() -> None:
    configmap = yaml.safe_load((DEPLOY / "k8s" / "configmap.yaml").read_text())
    shipped = yaml.safe_load(configmap["data"]["config.yaml"])
    repository = yaml.safe_load((ROOT / "config.yaml").read_text())
    assert shipped["models"].keys() == repository["models"].keys()
