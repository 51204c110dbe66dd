"""Who is calling: API keys (stored as SHA-256 hashes), the internal token, the client IP (pure)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.errors import AuthenticationFailed, PermissionDenied
from gateway.settings import AuthSettings, KeySettings, LimitSettings, key_id

MISSING_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or in an x-api-key header."
)
WRONG_KEY = "Incorrect API key provided. Ask your gateway administrator for a valid key."


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling. ``name`` is for people (logs, metrics, reports); ``key_id`` is what
    cache scope, rate-limit buckets and usage rows are keyed by (settings.key_id: stable, unique,
    never a secret)."""

    name: str
    team: str
    models: frozenset[str]  # empty: every model
    limits: LimitSettings
    internal: bool = False
    key_id: str = ""
    cache_controls: frozenset[str] = frozenset({"no-store"})  # see gateway/cache_control.py

    def may_use(self, model: str) -> bool:
        return self.internal or not self.models or model in self.models

    def cache_scope(self, mode: str) -> str:
        if mode == "key" or (mode == "team" and not self.team):
            return f"key:{self.key_id}"
        return f"team:{self.team}" if mode == "team" else "shared"


ANONYMOUS = Principal("anonymous", "", frozenset(), LimitSettings(), key_id="anonymous")
INTERNAL = Principal("internal", "", frozenset(), LimitSettings(), internal=True, key_id="internal")


def principal_of(key: KeySettings) -> Principal:
    return Principal(
        key.name,
        key.team,
        frozenset(key.models),
        key.limits,
        key_id=key_id(key),
        cache_controls=frozenset(key.cache_controls),
    )


class RuntimeKeys(Protocol):
    """Keys made through the admin API (see gateway.apikeys.directory)."""

    @property
    def requires_auth(self) -> bool: ...

    @property
    def names(self) -> dict[str, str]: ...

    def find(self, sha256: str) -> Principal | None: ...

    def used(self, key_id: str) -> None: ...


class KeyRing:
    def __init__(self, settings: AuthSettings, runtime: RuntimeKeys | None = None) -> None:
        self._keys = [(bytes.fromhex(key.sha256), principal_of(key)) for key in settings.keys]
        self._internal = settings.internal_token.encode()
        self._runtime = runtime

    @property
    def names(self) -> dict[str, str]:
        """Key id -> display name, for reports (keys made at runtime too)."""
        runtime = self._runtime.names if self._runtime is not None else {}
        return runtime | {principal.key_id: principal.name for _, principal in self._keys}

    @property
    def enabled(self) -> bool:
        return bool(self._keys) or (self._runtime is not None and self._runtime.requires_auth)

    def authenticate(self, presented: str | None) -> Principal:
        if presented and self._internal and hmac.compare_digest(presented.encode(), self._internal):
            return INTERNAL
        if not self.enabled:
            return ANONYMOUS
        if not presented:
            raise AuthenticationFailed(MISSING_KEY)
        digest = hashlib.sha256(presented.encode()).digest()
        principal = self._match(digest)
        if principal is not None and self._runtime is not None:
            self._runtime.used(principal.key_id)
        elif self._runtime is not None:
            principal = self._runtime.find(digest.hex())
        if principal is None:
            raise AuthenticationFailed(WRONG_KEY, code="invalid_api_key")
        return principal

    def _match(self, digest: bytes) -> Principal | None:
        """Compares against every stored hash, in constant time each, with no early exit."""
        match = None
        for stored, principal in self._keys:
            if hmac.compare_digest(digest, stored):
                match = principal
        return match


def check_model(principal: Principal, model: str) -> None:
    if not principal.may_use(model):
        raise PermissionDenied(f"This API key is not allowed to use the model `{model}`.")


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return x_api_key.strip() if x_api_key and x_api_key.strip() else None


Networks = Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]


def parse_networks(cidrs: Sequence[str]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(cidr, strict=False) for cidr in cidrs]


def client_ip(peer: str | None, forwarded_for: str | None, trusted: Networks) -> str:
    """The socket peer, or, behind trusted proxies, the nearest X-Forwarded-For hop that is not
    one of them (walking from the right: hops further left are whatever the client wrote)."""
    address = peer or "unknown"
    if not forwarded_for or not _is_trusted(address, trusted):
        return address
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        if not _is_trusted(hop, trusted):
            return hop
        address = hop
    return address


def forwarded_for(lines: Sequence[str]) -> str | None:
    """Every X-Forwarded-For line, joined in order: a proxy may add its own line after the
    client's instead of appending to it, and the walk from the right must see both."""
    return ",".join(lines) if lines else None


def _is_trusted(address: str, trusted: Networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)
