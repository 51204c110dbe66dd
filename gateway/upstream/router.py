"""Route a model's upstream call to its deployments in priority order (failover)."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.catalog import Model
from gateway.errors import GatewayError, UpstreamError
from gateway.upstream import Inputs, Provider, UpstreamBatch


class Router:
    def __init__(self, providers: Mapping[str, Provider]) -> None:
        self._providers = dict(providers)

    def batch_limits(self, model: Model) -> tuple[int, int]:
        """The tightest inputs-per-call and tokens-per-call caps among the model's providers."""
        providers = [self._providers[d.provider] for d in model.deployments]
        return (
            min(p.max_batch for p in providers),
            min(p.max_tokens_per_request for p in providers),
        )

    async def embed(self, model: Model, inputs: Inputs, dimensions: int | None) -> UpstreamBatch:
        failure: GatewayError = UpstreamError(f"no deployment for model {model.name}")
        for deployment in model.deployments:
            provider = self._providers[deployment.provider]
            try:
                return await provider.embed(deployment.upstream_model, inputs, dimensions)
            except GatewayError as exc:
                if not exc.should_retry:
                    raise
                failure = exc
        raise failure
