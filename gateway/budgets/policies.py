"""Which budgets a caller spends from (pure): its key's and its team's, from config, where a
budget set at runtime (the admin API) replaces the configured one or removes it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.budgets import Account, Budget, Scope

Owner = tuple[Scope, str]  # ("key", key id) or ("team", team name)


@dataclass(slots=True)
class Policies:
    configured: Mapping[Owner, Budget] = field(default_factory=dict)
    overrides: Mapping[Owner, Budget | None] = field(default_factory=dict)

    def budget(self, scope: Scope, owner: str) -> Budget | None:
        if (scope, owner) in self.overrides:
            return self.overrides[(scope, owner)]
        return self.configured.get((scope, owner))

    def accounts(self, key_id: str, team: str, now: float) -> list[Account]:
        owners: list[Owner] = [("key", key_id)]
        if team:
            owners.append(("team", team))
        return [
            Account.current(scope, owner, budget, now)
            for scope, owner in owners
            if (budget := self.budget(scope, owner)) is not None
        ]
