"""Typed, frozen settings: parsed from plain data (pure), loaded from YAML with ${ENV} expansion.

Every section is a frozen dataclass; ``parse`` walks its fields by type, so an unknown key or a
bad value stops startup with a message naming its path, e.g.
``models.text-embedding-3-small.price_per_million: must be a number >= 0``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")
Check = tuple[Callable[[Any], bool], str]


class SettingsError(ValueError):
    """A configuration problem, with the dotted path of the offending key."""


def _check(predicate: Callable[[Any], bool], message: str) -> dict[str, Check]:
    return {"check": (predicate, message)}


POSITIVE_INT = _check(lambda v: v >= 1, "must be an integer >= 1")
NON_NEGATIVE = _check(lambda v: v >= 0, "must be a number >= 0")
POSITIVE = _check(lambda v: v > 0, "must be a number > 0")
NON_NEGATIVE_OR_NONE = _check(lambda v: v is None or v >= 0, "must be a number >= 0")
SHA256_HEX = _check(
    lambda v: re.fullmatch(r"[0-9a-f]{64}", v) is not None,
    "must be 64 lowercase hex digits (python -m gateway hash-key prints it)",
)
KEY_ID = _check(
    lambda v: v == "" or re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", v) is not None,
    "must be 1-64 letters, digits, '_', '.' or '-'",
)
PORT = _check(lambda v: 0 <= v <= 65535, "must be a port number (0-65535)")


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = field(default=8080, metadata=PORT)
    max_body_bytes: int = field(default=32 * 1024 * 1024, metadata=POSITIVE_INT)
    body_timeout: float = field(default=30.0, metadata=POSITIVE)  # a stalled upload gets 408
    # Beyond this many requests in flight per process, answer 503 + retry-after, not a queue.
    max_concurrent_requests: int = field(default=1024, metadata=POSITIVE_INT)
    # A fair share: requests in flight per API key and per client IP; 0 means a quarter of
    # max_concurrent_requests.
    max_in_flight_per_key: int = field(default=0, metadata=NON_NEGATIVE)
    max_in_flight_per_ip: int = field(default=0, metadata=NON_NEGATIVE)
    # Requests of one client IP that begin in one turn of the event loop; the rest wait for the
    # next turns, so one client's burst never fills a turn everyone else waits behind. 0: all.
    starts_per_turn: int = field(default=1, metadata=NON_NEGATIVE)
    # Large requests are parsed and tokenised on threads, at most this many at once per key.
    offload_per_key: int = field(default=1, metadata=POSITIVE_INT)
    # Bodies of 1 MiB and more are parsed in this many separate processes (started on first
    # use): parsing holds the interpreter lock, so on a thread it would pause every request.
    # 0 parses them on threads.
    parse_processes: int = field(default=1, metadata=NON_NEGATIVE)
    # After body_grace seconds a body that has arrived slower than min_body_rate bytes/s gets a
    # 408 at once; 0 turns the check off (body_timeout still applies).
    min_body_rate: float = field(default=4096.0, metadata=NON_NEGATIVE)
    body_grace: float = field(default=2.0, metadata=NON_NEGATIVE)
    # A tenant's request bodies, all together, are read no faster than this many bytes/s
    # beyond 4 MiB at once (the rest waits in TCP's flow control), so one tenant's uploads
    # cannot fill the event loop or the parse process; 0: no cap.
    max_body_rate: float = field(default=8 * 1024 * 1024, metadata=NON_NEGATIVE)
    # A connection that has not sent a whole request head this long after it opened (or after
    # its last response) is closed: idle and half-written connections hold nothing for long.
    header_timeout: float = field(default=15.0, metadata=POSITIVE)
    shutdown_timeout: float = field(default=30.0, metadata=NON_NEGATIVE)
    log_level: Literal["debug", "info", "warning", "error"] = "info"


@dataclass(frozen=True, slots=True)
class CacheSettings:
    redis_url: str = ""
    max_bytes: int = field(default=1 << 30, metadata=POSITIVE_INT)  # the SQLite cache's budget
    hot_entries: int = field(default=10_000, metadata=POSITIVE_INT)  # in front of SQLite
    ttl_seconds: int = field(default=30 * 24 * 3600, metadata=POSITIVE_INT)
    memory_max_entries: int = field(default=100_000, metadata=POSITIVE_INT)
    key_prefix: str = "gw"
    timeout: float = field(default=0.25, metadata=POSITIVE)
    # Bytes of recent texts' token ids remembered per process (per cache scope); 0 turns it off.
    token_memo_bytes: int = field(default=32 * 1024 * 1024, metadata=NON_NEGATIVE)
    # Bytes of checked and rendered hot entries remembered per process; 0 turns it off.
    decoded_bytes: int = field(default=128 * 1024 * 1024, metadata=NON_NEGATIVE)
    # After this many failed calls in a row the cache is skipped (all misses) for the cooldown.
    breaker_failure_threshold: int = field(default=3, metadata=POSITIVE_INT)
    breaker_cooldown: float = field(default=2.0, metadata=POSITIVE)
    # How new entries are written; every entry is read by the format its header names
    # (gateway/storage_formats.py): raw float32, compact (lossless) or float16 (half the bytes).
    storage_format: Literal["raw", "compact", "float16"] = "raw"


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    max_attempts: int = field(default=3, metadata=POSITIVE_INT)  # per deployment
    # Per client request, over every deployment: with an SDK's 2 retries, at most 9 calls.
    max_total_attempts: int = field(default=3, metadata=POSITIVE_INT)
    base_delay: float = field(default=0.1, metadata=NON_NEGATIVE)  # backoff, full jitter
    max_delay: float = field(default=2.0, metadata=NON_NEGATIVE)
    deadline: float = field(default=30.0, metadata=POSITIVE)  # per request, all attempts
    attempt_timeout: float = field(default=10.0, metadata=POSITIVE)  # per upstream call
    # Consecutive failures: 10 keeps a flaky deployment (30% errors) in play while a dead one
    # is skipped after 10 calls.
    breaker_failure_threshold: int = field(default=10, metadata=POSITIVE_INT)
    breaker_cooldown: float = field(default=10.0, metadata=POSITIVE)


@dataclass(frozen=True, slots=True)
class FetchSettings:
    coalesce: bool = True  # concurrent misses of one key share one upstream fetch
    batch_window_ms: float = field(default=2.0, metadata=NON_NEGATIVE)  # 0: no micro-batching
    batch_max_inputs: int = field(default=2048, metadata=POSITIVE_INT)


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    base_url: str = ""  # required for type openai
    api_key: str = field(default="", repr=False)
    # With no api_key, calls fail at once (502, x-should-retry: false) saying what to set;
    # false: a self-hosted server that needs no key is called without one.
    requires_api_key: bool = True
    type: Literal["openai", "local"] = "openai"  # local: a model computed in-process
    max_batch: int = field(default=2048, metadata=POSITIVE_INT)
    max_tokens_per_request: int = field(default=300_000, metadata=POSITIVE_INT)
    connect_timeout: float = field(default=5.0, metadata=POSITIVE)
    read_timeout: float = field(default=60.0, metadata=POSITIVE)
    max_concurrency: int = field(default=64, metadata=POSITIVE_INT)


@dataclass(frozen=True, slots=True)
class DeploymentSettings:
    provider: str
    model: str = ""  # the provider's name for the model; empty means the gateway's name
    weight: float = field(default=0.0, metadata=NON_NEGATIVE)  # > 0: spread by weight


@dataclass(frozen=True, slots=True)
class ModelSettings:
    dimensions: int = field(metadata=POSITIVE_INT)
    deployments: tuple[DeploymentSettings, ...]
    max_tokens: int = field(default=8191, metadata=POSITIVE_INT)
    price_per_million: float = field(default=0.0, metadata=NON_NEGATIVE)
    supports_dimensions: bool = False
    # Serve reduced dimensions as the renormalised prefix of one cached full vector.
    derive_dimensions: bool = True
    # cl100k: the model reads cl100k token ids, so text and its ids share a cache entry.
    # local: an in-process model counts its own tokens; estimate: cl100k counts that never
    # refuse an input (the upstream judges its own limit).
    tokenizer: Literal["cl100k", "local", "estimate"] = "estimate"
    cache_id: str = ""
    owned_by: str = "system"
    display_name: str = ""
    description: str = ""


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """A token bucket pair; an unset field inherits the default, 0 means unlimited."""

    requests_per_second: float | None = field(default=None, metadata=NON_NEGATIVE_OR_NONE)
    requests_burst: float | None = field(default=None, metadata=NON_NEGATIVE_OR_NONE)
    tokens_per_minute: float | None = field(default=None, metadata=NON_NEGATIVE_OR_NONE)
    tokens_burst: float | None = field(default=None, metadata=NON_NEGATIVE_OR_NONE)


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    per_ip: LimitSettings = LimitSettings(requests_per_second=100, requests_burst=100)
    per_key: LimitSettings = LimitSettings(
        requests_per_second=100, requests_burst=200, tokens_per_minute=1_000_000
    )
    per_model: dict[str, LimitSettings] = field(default_factory=dict)
    # A request refused again before its retry-after has passed is answered this much later
    # (0: at once), so a client ignoring retry-after cannot fill the event loop with refusals.
    repeat_hold_seconds: float = field(default=1.0, metadata=NON_NEGATIVE)


@dataclass(frozen=True, slots=True)
class BudgetSettings:
    """Upstream spend allowed per UTC calendar period (weeks start on Monday)."""

    usd: float = field(metadata=NON_NEGATIVE)
    period: Literal["daily", "weekly", "monthly"] = "monthly"


@dataclass(frozen=True, slots=True)
class KeySettings:
    name: str
    sha256: str = field(repr=False, metadata=SHA256_HEX)  # python -m gateway hash-key
    # The stable id that cache scope, buckets and usage rows use; empty: derived (key_id()).
    id: str = field(default="", metadata=KEY_ID)
    team: str = ""
    models: tuple[str, ...] = ()  # empty: every model
    limits: LimitSettings = LimitSettings()
    budget: BudgetSettings | None = None
    # Per-request cache controls the key may send; no-cache spends upstream money, so it is
    # granted per key.
    cache_controls: tuple[Literal["no-cache", "no-store", "ttl"], ...] = ("no-store",)


@dataclass(frozen=True, slots=True)
class TeamSettings:
    budget: BudgetSettings | None = None


@dataclass(frozen=True, slots=True)
class AuthSettings:
    keys: tuple[KeySettings, ...] = ()
    internal_token: str = field(default="", repr=False)
    cache_scope: Literal["shared", "team", "key"] = "shared"
    trusted_proxies: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    require_internal_token: bool = False  # GET /metrics answers only with the internal token


Backend = Literal["memory", "sqlite", "redis"]
EMBEDDED: dict[str, Backend] = {
    "cache": "sqlite",
    "limiter": "memory",
    "usage": "sqlite",
    "keys": "sqlite",
    "budgets": "sqlite",
    "history": "sqlite",
}


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """Where each store keeps its state. ``auto``: Redis (or Redis Cluster, by the URL) when
    cache.redis_url is set, else the embedded default (memory, or SQLite for usage, keys,
    budgets and history)."""

    data_dir: str = ".gateway"  # the SQLite file lives here
    cache: Literal["auto", "memory", "sqlite", "redis"] = "auto"
    limiter: Literal["auto", "memory", "redis"] = "auto"
    usage: Literal["auto", "memory", "sqlite", "redis"] = "auto"
    keys: Literal["auto", "memory", "sqlite", "redis"] = "auto"
    budgets: Literal["auto", "memory", "sqlite", "redis"] = "auto"
    history: Literal["auto", "memory", "sqlite", "redis"] = "auto"
    # How often each instance checks for key changes made elsewhere (a revoke lands within it).
    keys_refresh_seconds: float = field(default=0.5, metadata=POSITIVE)


def backend(settings: Settings, store: str) -> Backend:
    """The backend a store runs on, with ``auto`` resolved."""
    chosen: str = getattr(settings.stores, store)
    if chosen != "auto":
        return chosen  # type: ignore[return-value]
    return "redis" if settings.cache.redis_url else EMBEDDED[store]


THRESHOLD = _check(
    lambda v: all(0 < t <= 10 for t in v), "must be fractions of the budget, > 0 and <= 10"
)


@dataclass(frozen=True, slots=True)
class AlertSettings:
    webhooks: tuple[str, ...] = ()  # each gets a JSON POST per threshold crossed
    thresholds: tuple[float, ...] = field(default=(0.5, 0.8, 1.0), metadata=THRESHOLD)
    timeout: float = field(default=5.0, metadata=POSITIVE)  # seconds per delivery attempt
    max_attempts: int = field(default=3, metadata=POSITIVE_INT)


@dataclass(frozen=True, slots=True)
class HistorySettings:
    retention_days: int = field(default=400, metadata=POSITIVE_INT)  # hourly usage kept


@dataclass(frozen=True, slots=True)
class Settings:
    server: ServerSettings = ServerSettings()
    cache: CacheSettings = CacheSettings()
    fetch: FetchSettings = FetchSettings()
    upstream: UpstreamSettings = UpstreamSettings()
    auth: AuthSettings = AuthSettings()
    limits: RateLimitSettings = RateLimitSettings()
    metrics: MetricsSettings = MetricsSettings()
    stores: StoreSettings = StoreSettings()
    teams: dict[str, TeamSettings] = field(default_factory=dict)
    alerts: AlertSettings = AlertSettings()
    history: HistorySettings = HistorySettings()
    providers: dict[str, ProviderSettings] = field(default_factory=dict)
    models: dict[str, ModelSettings] = field(default_factory=dict)


def parse(data: Mapping[str, Any]) -> Settings:
    settings = _parse_dataclass(Settings, data, "")
    _check_references(settings)
    return settings


def load(path: str | Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read YAML, expand ${ENV}, parse; then add GATEWAY_API_KEYS / GATEWAY_INTERNAL_TOKEN."""
    environ = os.environ if environ is None else environ
    return with_env_keys(parse(expand_env(_read_yaml(path), environ)), environ)


def with_env_keys(settings: Settings, environ: Mapping[str, str]) -> Settings:
    plain = [k.strip() for k in environ.get("GATEWAY_API_KEYS", "").split(",") if k.strip()]
    keys = tuple(
        KeySettings(name=f"env-{i}", sha256=hash_key(key)) for i, key in enumerate(plain, 1)
    )
    internal = environ.get("GATEWAY_INTERNAL_TOKEN") or settings.auth.internal_token
    auth = dataclasses.replace(
        settings.auth, keys=settings.auth.keys + keys, internal_token=internal
    )
    sources = [f"auth.keys[{i}]" for i in range(len(settings.auth.keys))]
    sources += [f"GATEWAY_API_KEYS (key {i})" for i in range(1, len(keys) + 1)]
    check_unique_keys(auth.keys, sources)
    return dataclasses.replace(settings, auth=auth)


RESERVED_KEY_NAMES = frozenset({"internal", "anonymous"})


def key_id(key: KeySettings) -> str:
    """A key's stable id: its configured ``id``, else ``key_`` and the first 16 hex digits of
    SHA-256 over its stored SHA-256 (so neither the secret nor its hash is shown, and renaming
    the key keeps its cache, buckets and usage). Keys added at run time derive it the same way."""
    if key.id:
        return key.id
    return "key_" + hashlib.sha256(bytes.fromhex(key.sha256)).hexdigest()[:16]


def check_unique_keys(keys: Sequence[KeySettings], sources: Sequence[str]) -> None:
    """Two keys never share a name, an id or a secret, and none takes a reserved name: either
    would merge two tenants into one principal. ``sources`` says where each key came from."""
    for i, key in enumerate(keys):
        if key.name in RESERVED_KEY_NAMES or key.id in RESERVED_KEY_NAMES:
            raise SettingsError(f"{sources[i]}.name: {key.name!r} is reserved")
        for j in range(i):
            clash = _clash(keys[j], key)
            if clash:
                raise SettingsError(
                    f"{sources[i]} has the same {clash} as {sources[j]}: "
                    "every key needs its own name, id and secret"
                )


def _clash(first: KeySettings, second: KeySettings) -> str:
    if first.name == second.name:
        return f"name {first.name!r}"
    if first.sha256 == second.sha256:
        return "secret"
    return f"id {key_id(first)!r}" if key_id(first) == key_id(second) else ""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _read_yaml(path: str | Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SettingsError(f"{path}: cannot read configuration: {exc}") from None
    if not isinstance(raw, dict):
        raise SettingsError(f"{path}: the top level must be a mapping")
    return raw


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: Any, environ: Mapping[str, str]) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string of a parsed YAML tree."""
    if isinstance(value, str):
        return _ENV_REF.sub(lambda m: environ.get(m[1]) or (m[2] or ""), value)
    if isinstance(value, dict):
        return {k: expand_env(v, environ) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, environ) for v in value]
    return value


def parse_as(cls: type[T], data: Any, path: str) -> T:
    """Parse plain data into any typed dataclass the way settings are (untrusted input too)."""
    return _parse_dataclass(cls, data, path)


def _parse_dataclass(cls: type[T], data: Any, path: str) -> T:
    if not isinstance(data, Mapping):
        raise SettingsError(f"{path or 'settings'}: must be a mapping")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in fields:
            raise SettingsError(f"{_join(path, str(key))}: unknown key")
    values = {}
    for name, spec in fields.items():
        if name in data:
            values[name] = _parse_field(spec, hints[name], data[name], _join(path, name))
        elif _is_required(spec):
            raise SettingsError(f"{_join(path, name)}: is required")
    return cls(**values)


def _parse_field(spec: dataclasses.Field[Any], hint: Any, raw: Any, path: str) -> Any:
    value = _convert(hint, raw, path)
    check = spec.metadata.get("check")
    if check is not None and not check[0](value):
        raise SettingsError(f"{path}: {check[1]}")
    return value


def _convert(hint: Any, raw: Any, path: str) -> Any:
    origin = get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _parse_dataclass(hint, raw, path)  # type: ignore[arg-type]
    if origin is Literal:
        return _literal(get_args(hint), raw, path)
    if origin is dict:
        return _mapping(get_args(hint)[1], raw, path)
    if origin is tuple:
        return _sequence(get_args(hint)[0], raw, path)
    if origin is types.UnionType:  # `X | None`
        return None if raw is None else _convert(get_args(hint)[0], raw, path)
    return _scalar(hint, raw, path)


def _literal(choices: tuple[Any, ...], raw: Any, path: str) -> Any:
    if raw not in choices:
        raise SettingsError(f"{path}: must be one of {', '.join(map(str, choices))}")
    return raw


def _mapping(value_hint: Any, raw: Any, path: str) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise SettingsError(f"{path}: must be a mapping")
    return {str(k): _convert(value_hint, v, _join(path, str(k))) for k, v in raw.items()}


def _sequence(item_hint: Any, raw: Any, path: str) -> tuple[Any, ...]:
    if not isinstance(raw, list):
        raise SettingsError(f"{path}: must be a list")
    return tuple(_convert(item_hint, v, f"{path}[{i}]") for i, v in enumerate(raw))


_SCALAR_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _scalar(hint: type, raw: Any, path: str) -> Any:
    # Values that came through ${ENV} expansion arrive as text; accept them when they parse.
    if isinstance(raw, str) and hint is not str:
        raw = _text_value(raw)
    ok = isinstance(raw, hint) and not (hint is not bool and isinstance(raw, bool))
    if hint is float and isinstance(raw, int) and not isinstance(raw, bool):
        return float(raw)
    if not ok:
        raise SettingsError(f"{path}: must be {_SCALAR_NAMES.get(hint, hint.__name__)}")
    return raw


def _text_value(raw: str) -> Any:
    """What a text means as YAML; text that is no YAML at all stays text (and fails the type)."""
    try:
        return yaml.safe_load(raw) if raw else raw
    except yaml.YAMLError:
        return raw


def _is_required(spec: dataclasses.Field[Any]) -> bool:
    return spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _check_references(settings: Settings) -> None:
    _check_providers(settings)
    _check_stores(settings)
    _check_deployments(settings)
    keys = settings.auth.keys
    check_unique_keys(keys, [f"auth.keys[{i}]" for i in range(len(keys))])


def _check_stores(settings: Settings) -> None:
    for store in EMBEDDED:
        if backend(settings, store) == "redis" and not settings.cache.redis_url:
            raise SettingsError(f"stores.{store}: redis needs cache.redis_url (or REDIS_URL)")


def _check_providers(settings: Settings) -> None:
    for name, provider in settings.providers.items():
        if provider.type == "openai" and not provider.base_url:
            raise SettingsError(f"providers.{name}.base_url: is required")


def _check_deployments(settings: Settings) -> None:
    for name, model in settings.models.items():
        if not model.deployments:
            raise SettingsError(f"models.{name}.deployments: must list at least one deployment")
        for i, deployment in enumerate(model.deployments):
            if deployment.provider not in settings.providers:
                raise SettingsError(
                    f"models.{name}.deployments[{i}].provider: "
                    f"unknown provider {deployment.provider!r}"
                )
