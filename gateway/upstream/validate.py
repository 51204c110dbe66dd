"""What every provider's answer must be before a vector is used or cached (pure).

Providers parse their own wire format; this checks the result against what the call asked for,
whatever the provider: one row per input, the expected dimensions, finite float32 numbers.
Reported usage is judged later, against the local counts (fetch.plausible_usage).
"""

from __future__ import annotations

import numpy as np

from gateway.errors import UpstreamError, answered
from gateway.upstream import UpstreamBatch


def check_batch(batch: UpstreamBatch, inputs: int, dimensions: int, provider: str) -> None:
    vectors = batch.vectors
    if vectors.ndim != 2 or vectors.shape[0] != inputs:
        raise _invalid(f"upstream provider {provider} returned the wrong number of vectors")
    if vectors.shape[1] != dimensions:
        raise _invalid(
            f"upstream provider {provider} returned {vectors.shape[1]}-dimensional vectors, "
            f"expected {dimensions}"
        )
    if vectors.dtype != np.dtype("<f4") or not np.isfinite(vectors).all():
        raise _invalid(f"upstream provider {provider} returned non-finite numbers")


def _invalid(message: str) -> UpstreamError:
    return answered(UpstreamError(message), "invalid")
