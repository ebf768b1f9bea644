"""Settings in sections (issue #18): typed choices, a secret that never shows, no way to build
settings that skips the checks, and every tunable a setting with today's value as default."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path
from typing import Literal, get_args, get_type_hints

import pytest

from stream import relay
from stream.runtime import Runtime
from stream.settings import (
    KafkaSettings,
    OperationsSettings,
    RedisSettings,
    ScoringSettings,
    Secret,
    Settings,
    SettingsError,
    load_settings,
    settings_table,
)

SASL_PW = "s3cret-sasl-pw"
REDIS_PW = "s3cret-redis-pw"
SECTIONS = (KafkaSettings, RedisSettings, ScoringSettings, OperationsSettings)


def test_sections_group_the_settings() -> None:
    settings = load_settings(
        env={
            "RFM_KAFKA_BOOTSTRAP": "kafka:9092",
            "RFM_APP_ID": "group",
            "RFM_REDIS_URL": "redis://redis:6379/1",
            "RFM_SCORING": "quintiles",
            "RFM_WEB_PORT": "7000",
        }
    )
    assert settings.kafka.bootstrap == "kafka:9092" and settings.kafka.app_id == "group"
    assert settings.redis.url == "redis://redis:6379/1"
    assert settings.scoring.mode == "quintiles" and settings.scoring.exponent == 2
    assert settings.operations.web_port == 7000


def test_every_variable_is_declared_once() -> None:
    variables = [variable for variable, _, _ in settings_table()]
    assert len(variables) == len(set(variables))
    assert all(v.startswith("RFM_") and v == v.upper() for v in variables)


def test_today_s_constants_are_the_defaults() -> None:
    """The tunables that were constants keep their values as defaults."""
    settings = Settings()
    assert settings.operations.gap_check_interval == 10
    assert settings.operations.relay_interval == 0.5
    assert settings.operations.relay_lock_timeout == relay.LOCK_SECONDS == 10
    assert settings.operations.relay_chunk == relay.CHUNK == 2000
    assert settings.operations.gauge_refresh_interval == 5
    assert (
        settings.redis.socket_timeout,
        settings.redis.connect_timeout,
        settings.redis.health_check_interval,
    ) == (10, 5, 30)
    assert settings == load_settings(env={})


@pytest.mark.parametrize(
    ("section", "name", "variable"),
    [
        (KafkaSettings, "security_protocol", "RFM_KAFKA_SECURITY_PROTOCOL"),
        (KafkaSettings, "sasl_mechanism", "RFM_KAFKA_SASL_MECHANISM"),
        (ScoringSettings, "mode", "RFM_SCORING"),
        (ScoringSettings, "clock", "RFM_CLOCK"),
        (OperationsSettings, "log_level", "RFM_LOG_LEVEL"),
        (OperationsSettings, "log_format", "RFM_LOG_FORMAT"),
    ],
)
def test_choices_are_literal_types_and_the_parser_takes_exactly_them(
    section: type, name: str, variable: str
) -> None:
    hint = get_type_hints(section)[name]
    assert getattr(hint, "__origin__", None) is Literal
    for choice in get_args(hint):
        load_settings(env={variable: choice})
    with pytest.raises(SettingsError, match=variable):
        load_settings(env={variable: get_args(hint)[0] + "x"})


def test_no_construction_path_skips_the_checks() -> None:
    with pytest.raises(SettingsError, match="RFM_PARTITIONS"):
        KafkaSettings(partitions=0)
    with pytest.raises(SettingsError, match="RFM_CLOCK"):
        dataclasses.replace(Settings().scoring, clock="server")  # type: ignore[arg-type]
    with pytest.raises(SettingsError, match="RFM_RECENCY_DAYS"):
        ScoringSettings(recency_days=(120, 90, 60, 30))
    with pytest.raises(SettingsError, match="RFM_WEB_PORT"):
        Settings().with_values({"RFM_WEB_PORT": "http"})
    with pytest.raises(SettingsError, match="RFM_NO_SUCH"):
        Settings().with_values({"RFM_NO_SUCH": "1"})
    with pytest.raises(TypeError):
        Settings(kafka=RedisSettings())  # type: ignore[arg-type]


def test_values_given_as_text_are_parsed_to_their_types() -> None:
    kafka = KafkaSettings(partitions="12")  # type: ignore[arg-type]
    assert kafka.partitions == 12
    changed = Settings().with_values({"RFM_PARTITIONS": "3", "RFM_REDIS_PREFIX": " p "})
    assert (changed.kafka.partitions, changed.redis.prefix) == (3, "p")
    assert changed.scoring == Settings().scoring


def test_a_config_file_keeps_its_flat_format(tmp_path: Path) -> None:
    path = tmp_path / "rfm.toml"
    path.write_text(
        'kafka_bootstrap = "k:9092"\nrecency_days = [10, 20, 30, 40]\nredis_socket_timeout = 2.5\n'
        'relay_chunk = 500\nscoring = "quintiles"\n',
        encoding="utf-8",
    )
    settings = load_settings(env={"RFM_RELAY_CHUNK": "100"}, config_file=path)
    assert settings.kafka.bootstrap == "k:9092"
    assert settings.scoring.recency_days == (10, 20, 30, 40)
    assert settings.scoring.mode == "quintiles"
    assert settings.redis.socket_timeout == 2.5
    assert settings.operations.relay_chunk == 100  # the environment wins


def test_the_sasl_password_is_a_secret_that_never_shows(caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(
        env={
            "RFM_KAFKA_SASL_PASSWORD": SASL_PW,
            "RFM_REDIS_URL": f"redis://user:{REDIS_PW}@redis:6379/0",
        }
    )
    password = settings.kafka.sasl_password
    assert isinstance(password, Secret) and password.get_secret_value() == SASL_PW
    logging.getLogger("test").warning("settings %s %r %s", settings, settings, password)
    shown = [
        repr(settings),
        str(settings),
        repr(settings.kafka),
        repr(settings.redis),
        str(settings.redacted()),
        f"{password} {password!r}",
        caplog.text,
    ]
    for text in shown:
        assert SASL_PW not in text and REDIS_PW not in text, text
    assert settings.redacted()["RFM_KAFKA_SASL_PASSWORD"] == "***"
    assert settings.redacted()["RFM_REDIS_URL"] == "redis://***@redis:6379/0"
    assert repr(load_settings(env={}).kafka.sasl_password) == "Secret('')"


def test_an_error_names_the_variable_but_not_the_password() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(env={"RFM_REDIS_URL": f"http://user:{REDIS_PW}@redis:6379/0"})
    assert "RFM_REDIS_URL" in str(err.value) and REDIS_PW not in str(err.value)


def test_the_clients_get_the_settings() -> None:
    settings = load_settings(
        env={
            "RFM_REDIS_URL": "redis://127.0.0.1:1/0",
            "RFM_REDIS_SOCKET_TIMEOUT": "3",
            "RFM_REDIS_CONNECT_TIMEOUT": "2",
            "RFM_REDIS_HEALTH_CHECK_INTERVAL": "7",
            "RFM_RELAY_CHUNK": "250",
            "RFM_RELAY_LOCK_TIMEOUT": "20",
        }
    )
    runtime = Runtime.build(settings)
    try:
        kwargs = runtime.redis.connection_pool.connection_kwargs
        assert (
            kwargs["socket_timeout"],
            kwargs["socket_connect_timeout"],
            kwargs["health_check_interval"],
        ) == (3, 2, 7)
        assert (runtime.relay.chunk, runtime.relay.lock_seconds) == (250, 20)
    finally:
        asyncio.run(runtime.redis.aclose())
