"""The model catalog: what each model is, what it costs, and where it is deployed (pure)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from gateway.settings import ModelSettings


@dataclass(frozen=True, slots=True)
class Deployment:
    provider: str
    upstream_model: str
    weight: float = 0.0


@dataclass(frozen=True, slots=True)
class Model:
    name: str
    dimensions: int
    max_tokens: int
    price_per_million: float
    supports_dimensions: bool
    derive_dimensions: bool
    cl100k: bool
    cache_id: str
    owned_by: str
    display_name: str
    description: str
    deployments: tuple[Deployment, ...]

    def cost_usd(self, tokens: int) -> float:
        return tokens * self.price_per_million / 1_000_000

    def fetch_dimensions(self, requested: int | None) -> int | None:
        """The `dimensions` to ask upstream for: None (native) when derived locally."""
        if requested is None or requested == self.dimensions or self.derive_dimensions:
            return None
        return requested


class Catalog:
    def __init__(self, models: Mapping[str, Model]) -> None:
        self._models = dict(models)

    @classmethod
    def from_settings(cls, models: Mapping[str, ModelSettings]) -> Catalog:
        return cls({name: model_from_settings(name, spec) for name, spec in models.items()})

    def get(self, name: str) -> Model | None:
        return self._models.get(name)

    def __iter__(self) -> Iterator[Model]:
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)


def model_from_settings(name: str, spec: ModelSettings) -> Model:
    return Model(
        name=name,
        dimensions=spec.dimensions,
        max_tokens=spec.max_tokens,
        price_per_million=spec.price_per_million,
        supports_dimensions=spec.supports_dimensions,
        derive_dimensions=spec.supports_dimensions and spec.derive_dimensions,
        cl100k=spec.tokenizer == "cl100k",
        cache_id=spec.cache_id or name,
        owned_by=spec.owned_by,
        display_name=spec.display_name or name,
        description=spec.description,
        deployments=tuple(
            Deployment(d.provider, d.model or name, d.weight) for d in spec.deployments
        ),
    )
