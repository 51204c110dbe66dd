from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.settings import SettingsError, expand_env, load, parse
from tests.support.stack import CONFIG

PROVIDERS = {"p": {"base_url": "http://upstream"}}
MODEL = {"dimensions": 8, "deployments": [{"provider": "p"}]}


def settings_with(**overrides: Any) -> dict[str, Any]:
    return {"providers": PROVIDERS, "models": {"m": {**MODEL, **overrides}}}


def error_for(data: dict[str, Any]) -> str:
    with pytest.raises(SettingsError) as raised:
        parse(data)
    return str(raised.value)


def test_the_shipped_config_lists_seventeen_models() -> None:
    settings = load(CONFIG, environ={})
    assert len(settings.models) == 17
    assert settings.cache.redis_url == ""


def test_openai_models_fail_over_from_openai_to_nanogpt() -> None:
    settings = load(CONFIG, environ={})
    deployments = settings.models["text-embedding-3-large"].deployments
    assert [d.provider for d in deployments] == ["openai", "nanogpt"]
    assert [d.provider for d in settings.models["BAAI/bge-m3"].deployments] == ["nanogpt"]


def test_a_negative_price_names_its_path() -> None:
    message = error_for(settings_with(price_per_million=-1))
    assert message == "models.m.price_per_million: must be a number >= 0"


def test_an_unknown_key_names_its_path() -> None:
    assert error_for(settings_with(colour="red")) == "models.m.colour: unknown key"


def test_a_wrong_type_names_its_path() -> None:
    assert error_for(settings_with(dimensions="many")) == "models.m.dimensions: must be an integer"


def test_a_missing_required_key_names_its_path() -> None:
    assert error_for({"providers": {"p": {}}}) == "providers.p.base_url: is required"


def test_a_deployment_on_an_unknown_provider_is_an_error() -> None:
    data = settings_with(deployments=[{"provider": "nope"}])
    assert error_for(data) == "models.m.deployments[0].provider: unknown provider 'nope'"


def test_a_literal_lists_its_choices() -> None:
    assert "must be one of cl100k, local, estimate" in error_for(settings_with(tokenizer="bpe"))


def test_env_references_expand_with_defaults() -> None:
    raw = {"a": "${X}", "b": "${Y:-fallback}", "c": ["${X}-${Y:-z}"]}
    assert expand_env(raw, {"X": "1"}) == {"a": "1", "b": "fallback", "c": ["1-z"]}


def test_numbers_from_the_environment_are_parsed() -> None:
    data = expand_env({"server": {"port": "${PORT:-9000}"}}, {})
    assert parse(data).server.port == 9000


def test_an_unreadable_file_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read"):
        load(tmp_path / "missing.yaml")


def test_text_that_is_no_yaml_is_a_settings_error_not_a_crash() -> None:
    with pytest.raises(SettingsError, match=r"server\.port: must be an integer"):
        parse({"server": {"port": "\x18\\"}})


def test_the_cache_storage_format_defaults_to_raw_and_lists_its_choices() -> None:
    assert parse(settings_with()).cache.storage_format == "raw"
    data = {**settings_with(), "cache": {"storage_format": "zstd"}}
    assert error_for(data) == "cache.storage_format: must be one of raw, compact, float16"
