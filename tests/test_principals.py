"""Principals are unique: colliding names, ids or secrets stop startup naming both sources,
reserved names are refused, and tenants are keyed by a stable id, not their display name."""

from __future__ import annotations

import pytest

from gateway.auth import KeyRing
from gateway.settings import (
    AuthSettings,
    KeySettings,
    Settings,
    SettingsError,
    hash_key,
    key_id,
    parse,
    with_env_keys,
)


def config_keys(*keys: dict[str, str]) -> Settings:
    return parse({"auth": {"keys": list(keys)}})


def test_a_config_key_named_like_an_env_key_fails_startup_naming_both() -> None:
    settings = config_keys({"name": "env-1", "sha256": hash_key("sk-config")})
    with pytest.raises(SettingsError) as raised:
        with_env_keys(settings, {"GATEWAY_API_KEYS": "sk-other-secret"})
    message = str(raised.value)
    assert "auth.keys[0]" in message and "GATEWAY_API_KEYS (key 1)" in message
    assert "name 'env-1'" in message


def test_the_same_secret_in_config_and_environment_fails_startup() -> None:
    settings = config_keys({"name": "alice", "sha256": hash_key("sk-shared")})
    with pytest.raises(SettingsError, match="same secret"):
        with_env_keys(settings, {"GATEWAY_API_KEYS": "sk-shared"})


@pytest.mark.parametrize("name", ["internal", "anonymous"])
def test_reserved_names_are_refused(name: str) -> None:
    with pytest.raises(SettingsError, match=f"auth.keys\\[0\\].name: '{name}' is reserved"):
        config_keys({"name": name, "sha256": hash_key("sk-x")})


def test_two_config_keys_with_one_id_fail_startup() -> None:
    with pytest.raises(SettingsError, match="same id 'team-a'"):
        config_keys(
            {"name": "a", "sha256": hash_key("sk-a"), "id": "team-a"},
            {"name": "b", "sha256": hash_key("sk-b"), "id": "team-a"},
        )


def test_the_key_id_is_derived_from_the_stored_hash_and_never_shows_it() -> None:
    key = KeySettings(name="alice", sha256=hash_key("sk-alice"))
    derived = key_id(key)
    assert derived.startswith("key_") and len(derived) == 20
    assert derived[4:] not in key.sha256 and "sk-alice" not in derived
    assert key_id(KeySettings(name="renamed", sha256=key.sha256)) == derived
    assert key_id(KeySettings(name="alice", sha256=key.sha256, id="search-indexer")) == (
        "search-indexer"
    )


def test_principals_are_scoped_by_key_id_not_name() -> None:
    keys = (KeySettings(name="alice", sha256=hash_key("sk-alice")),)
    principal = KeyRing(AuthSettings(keys=keys)).authenticate("sk-alice")
    assert principal.key_id == key_id(keys[0])
    assert principal.cache_scope("key") == f"key:{principal.key_id}"
