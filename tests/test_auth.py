from __future__ import annotations

import pytest

from gateway.auth import (
    ANONYMOUS,
    KeyRing,
    Principal,
    check_model,
    client_ip,
    parse_networks,
    presented_key,
)
from gateway.errors import AuthenticationFailed, PermissionDenied
from gateway.quota import Quota, headers, resolve
from gateway.ratelimit import Decision
from gateway.settings import (
    AuthSettings,
    KeySettings,
    LimitSettings,
    Settings,
    hash_key,
    with_env_keys,
)

RING = KeyRing(
    AuthSettings(
        keys=(KeySettings(name="a", sha256=hash_key("sk-a"), team="t", models=("m1",)),),
        internal_token="internal",
    )
)
TRUSTED = parse_networks(["10.0.0.0/8"])


def test_a_known_key_authenticates_as_its_principal() -> None:
    principal = RING.authenticate("sk-a")
    assert (principal.name, principal.team) == ("a", "t")


def test_an_unknown_key_is_invalid_api_key() -> None:
    with pytest.raises(AuthenticationFailed) as raised:
        RING.authenticate("sk-b")
    assert raised.value.code == "invalid_api_key"
    assert "sk-b" not in raised.value.message


def test_a_missing_key_is_refused_when_keys_exist() -> None:
    with pytest.raises(AuthenticationFailed):
        RING.authenticate(None)


def test_with_no_keys_everyone_is_anonymous() -> None:
    assert KeyRing(AuthSettings()).authenticate(None) is ANONYMOUS


def test_the_internal_token_is_an_unlimited_principal() -> None:
    assert RING.authenticate("internal").internal


def test_a_key_may_only_use_its_allowed_models() -> None:
    principal = RING.authenticate("sk-a")
    check_model(principal, "m1")
    with pytest.raises(PermissionDenied):
        check_model(principal, "m2")


def test_bearer_and_x_api_key_are_both_read() -> None:
    assert presented_key("Bearer sk-1", None) == "sk-1"
    assert presented_key("bearer  sk-1 ", None) == "sk-1"
    assert presented_key(None, "sk-2") == "sk-2"
    assert presented_key("Basic abc", None) is None


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("1.2.3.4", "9.9.9.9", "1.2.3.4"),  # untrusted peer: the header is ignored
        ("10.0.0.1", "5.6.7.8", "5.6.7.8"),
        ("10.0.0.1", "6.6.6.6, 5.6.7.8, 10.0.0.2", "5.6.7.8"),  # spoofed left hop ignored
        ("10.0.0.1", None, "10.0.0.1"),
    ],
)
def test_client_ip_reads_forwarded_for_only_behind_trusted_proxies(
    peer: str, forwarded: str | None, expected: str
) -> None:
    assert client_ip(peer, forwarded, TRUSTED) == expected


def test_cache_scopes_name_the_shared_cache_the_team_or_the_key() -> None:
    principal = Principal("k", "team", frozenset(), LimitSettings(), key_id="key_k")
    assert principal.cache_scope("shared") == "shared"
    assert principal.cache_scope("team") == "team:team"
    assert principal.cache_scope("key") == "key:key_k"


def test_env_keys_are_named_in_order() -> None:
    settings = with_env_keys(Settings(), {"GATEWAY_API_KEYS": "x, y"})
    assert [k.name for k in settings.auth.keys] == ["env-1", "env-2"]
    assert settings.auth.keys[1].sha256 == hash_key("y")


def test_a_keys_own_limits_override_the_defaults_field_by_field() -> None:
    merged = resolve(LimitSettings(tokens_per_minute=5), LimitSettings(1, 2, 3, 4))
    assert merged == LimitSettings(1, 2, 5, 4)


def test_rate_limit_headers_use_openai_names_and_go_durations() -> None:
    decision = Decision(True, 100, 41.7, 0, 1.5, False)
    assert headers(Quota(requests=decision)) == {
        "x-ratelimit-limit-requests": "100",
        "x-ratelimit-remaining-requests": "41",
        "x-ratelimit-reset-requests": "1.5s",
    }
