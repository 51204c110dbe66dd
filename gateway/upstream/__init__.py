"""Upstream embedding providers behind one small protocol."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from gateway.tokens import TokenIds

Inputs = Sequence[str] | Sequence[TokenIds]


@dataclass(frozen=True, slots=True)
class UpstreamBatch:
    vectors: npt.NDArray[np.float32]  # shape (inputs, dimensions), little-endian, C order
    prompt_tokens: int | None  # as the provider reported it


class Provider(Protocol):
    name: str
    max_batch: int
    max_tokens_per_request: int

    async def embed(self, model: str, inputs: Inputs, dimensions: int | None) -> UpstreamBatch: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...
