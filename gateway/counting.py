"""Which tokenizer counts a model's inputs, and whether its counts may refuse an input.

    cl100k    OpenAI's models: exact counts, from the cl100k ids each input is keyed by
    local     a model computed in-process (multilingual-e5-small): its engine counts its own
              tokens, special tokens and the e5 prefix included, so its limit is judged exactly
    estimate  every other model: cl100k counts, which can be far off (Thai text counts several
              times its real tokens for e5, camelCase code a fraction). They feed rate limits,
              budgets and usage, but never refuse an input: the upstream judges its own limit
              and its 400 is passed on.

A model whose own tokenizer is not at hand (the local engine not loaded) falls back to the
estimate, and so to the upstream's judgement.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

from gateway.canonical import Prepared, check_token_limits
from gateway.catalog import Model

# The model's upstream name and its texts → each text's token count; None: not available now.
OwnCounter = Callable[[str, Sequence[str]], list[int] | None]


@dataclasses.dataclass(frozen=True, slots=True)
class OwnTokenizer:
    count: OwnCounter
    upstream_model: str  # e5 reads a "query: " or "passage: " prefix chosen by this name


class Tokenizers:
    """The own tokenizers the gateway has, by model name."""

    def __init__(self, own: Mapping[str, OwnTokenizer] | None = None) -> None:
        self._own = dict(own or {})

    def has_own(self, model: Model) -> bool:
        return model.name in self._own

    def judge(self, model: Model, prepared: Prepared) -> Prepared:
        """The inputs counted by the model's own tokenizer where there is one; OpenAI's limits
        (per input and per request) enforced when the counts are exact."""
        counted = self._own_counts(model, prepared)
        if counted is not None:
            prepared = dataclasses.replace(prepared, counts=counted)
        if model.cl100k or counted is not None:
            check_token_limits(prepared.counts, model.max_tokens)
        return prepared

    def _own_counts(self, model: Model, prepared: Prepared) -> list[int] | None:
        own = self._own.get(model.name)
        if own is None or model.cl100k:
            return None
        texts = [item for item in prepared.forward if isinstance(item, str)]
        if len(texts) != len(prepared.forward):
            return None
        return own.count(own.upstream_model, texts)
