"""After a response is built: metrics, usage counters, and the request's cost and savings; after
a request of a known key failed: whether the spend history counts it as rate-limited or as an
upstream error."""

from __future__ import annotations

from dataclasses import dataclass

from gateway import history
from gateway.catalog import Model
from gateway.errors import GatewayError
from gateway.history.buffer import HistoryBuffer
from gateway.metrics import Metrics
from gateway.service import Caller, EmbeddingResult
from gateway.usage import Counts, Row, UsageRecord
from gateway.usage.buffer import UsageBuffer


@dataclass(frozen=True, slots=True)
class Charge:
    spent_usd: float  # what this request's own upstream inputs cost
    saved_usd: float  # what hits, duplicates and coalesced inputs would have cost

    def headers(self) -> dict[str, str]:
        return {
            "x-gateway-cost-usd": usd(self.spent_usd),
            "x-gateway-saved-usd": usd(self.saved_usd),
        }


def usd(amount: float) -> str:
    """Fixed-point dollars without float noise in the last places: 8e-08 -> 0.00000008."""
    text = f"{amount:.12f}".rstrip("0").rstrip(".")
    return text or "0"


UPSTREAM_FAILURES = frozenset({502, 503, 504})


def refusal(error: GatewayError) -> history.Counts | None:
    """What the spend history counts for a failed request: every 429 is the gateway's own (a
    provider's 429 is answered as a 503); a 502/503/504 or a provider's error passed on is an
    upstream error. Errors about the request itself (4xx) count nowhere."""
    if error.status == 429:
        return history.RATE_LIMITED
    if error.status in UPSTREAM_FAILURES or error.upstream_status is not None:
        return history.UPSTREAM_ERROR
    return None


class Accountant:
    def __init__(
        self, metrics: Metrics, usage: UsageBuffer, history: HistoryBuffer | None = None
    ) -> None:
        self._metrics = metrics
        self._usage = usage
        self._history = history

    def record(self, caller: Caller, model: Model, result: EmbeddingResult) -> Charge:
        charge = Charge(model.cost_usd(result.miss_tokens), model.cost_usd(result.saved_tokens))
        key, team = caller.principal.name, caller.principal.team
        metrics = self._metrics
        metrics.inputs(
            model.name, result.hits, result.misses, result.coalesced, result.deduplicated
        )
        metrics.tokens(model.name, key, team, result.saved_tokens, result.miss_tokens)
        metrics.cost(model.name, key, team, charge.spent_usd, charge.saved_usd)
        counts = Counts(
            requests=1,
            inputs=result.inputs,
            cached_inputs=result.inputs - result.misses,
            tokens=result.prompt_tokens,
            billed_tokens=result.miss_tokens,
        )
        self._usage.add(UsageRecord(Row(caller.principal.key_id, team, model.name), counts))
        if self._history is not None:
            self._history.add(
                caller.principal.key_id, team, model.name, history.Counts.served(counts)
            )
        return charge

    def failed(self, caller: Caller, model: str, error: GatewayError) -> None:
        """``model``: "" when the request failed before its model was read."""
        counts = refusal(error)
        if counts is not None and self._history is not None:
            self._history.add(caller.principal.key_id, caller.principal.team, model, counts)
