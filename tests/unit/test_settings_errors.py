"""README, "Settings": a wrong value stops the program at start with a message naming the
setting. Every setting of the table gets a wrong value here (where one exists), from the
environment and from ``--config FILE.toml``, and the command line turns the error into
exit 2 with the variable's name on stderr (tests/integration/test_cli_exit_codes.py runs
the installed command against real servers)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stream.cli.main import EXIT_USAGE, main
from stream.settings import SettingsError, load_settings, settings_table

# A wrong value for every setting that has one; each must fail at load time naming it.
BAD_VALUES: dict[str, list[str]] = {
    "RFM_KAFKA_BOOTSTRAP": ["", "   "],
    "RFM_REDIS_URL": ["", "http://127.0.0.1:6379/0", "127.0.0.1:6379"],
    "RFM_REDIS_PREFIX": [" "],
    "RFM_KAFKA_SECURITY_PROTOCOL": ["TLS", "plaintext"],
    "RFM_KAFKA_SASL_MECHANISM": ["GSSAPI"],
    "RFM_APP_ID": [""],
    "RFM_ORDERS_TOPIC": [" "],
    "RFM_DLQ_TOPIC": [""],
    "RFM_CHANGES_TOPIC": [""],
    "RFM_SNAPSHOT_TOPIC": [" "],
    "RFM_PARTITIONS": ["0", "-1", "eight", "1.5"],
    "RFM_REPLICATION_FACTOR": ["0"],
    "RFM_SCORING": ["median"],
    "RFM_SEGMENTS": [" "],
    "RFM_CLOCK": ["server"],
    "RFM_CURRENCY": ["usd", "US$", "EURO"],
    "RFM_CURRENCY_RATES": ["EUR", "EUR=abc", "EUR=-1"],
    "RFM_RECENCY_DAYS": ["30,60,90", "30,60,x,120", "120,90,60,30"],
    "RFM_FREQUENCY": ["2,4,7", "2,4,7,10,12", "10,7,4,2"],
    "RFM_MONETARY": ["100,400,700", "100,abc,700,1000", "1000,700,400,100"],
    "RFM_RESCORE_INTERVAL": ["0", "-60", "soon", "nan"],
    "RFM_MAX_FUTURE_SKEW": ["0", "-1"],
    "RFM_WINDOW_DAYS": ["-1", "1.5", "year", "36501"],
    # below the default window (365), negative, not a number
    "RFM_ORDER_RETENTION_DAYS": ["100", "-5", "x"],
    "RFM_BATCH_SIZE": ["0", "1.5"],
    "RFM_FETCH_MAX_WAIT_MS": ["0", "100ms"],
    "RFM_WEB_PORT": ["0", "http", "70000"],
    "RFM_DATA_DIR": [" "],
    "RFM_LOG_LEVEL": ["verbose", "INFO"],
    "RFM_LOG_FORMAT": ["xml"],
    "RFM_SESSION_TIMEOUT": ["0"],
    "RFM_HEARTBEAT_INTERVAL": ["-1"],
    "RFM_REBALANCE_TIMEOUT": ["five"],
    "RFM_REDIS_TLS_CA_FILE": ["/no/such/file", "/", __file__],  # missing, a directory, not PEM
    "RFM_KAFKA_SSL_CA_FILE": ["/no/such/file", __file__],
    "RFM_REDIS_SOCKET_TIMEOUT": ["0", "-1", "ten", "inf"],
    "RFM_REDIS_CONNECT_TIMEOUT": ["0", "5s"],
    "RFM_REDIS_HEALTH_CHECK_INTERVAL": ["0", "-30"],
    "RFM_GAP_CHECK_INTERVAL": ["0", "-10", "often"],
    "RFM_RELAY_INTERVAL": ["0", "-0.5", "nan"],
    "RFM_RELAY_LOCK_TIMEOUT": ["0", "1.5", "ten"],
    "RFM_RELAY_CHUNK": ["0", "-2000", "2k"],
    "RFM_GAUGE_REFRESH_INTERVAL": ["0", "five"],
    "RFM_API_HOST": ["", " "],
    "RFM_API_PORT": ["0", "http", "70000"],
    # too short; a space inside; a comma-separated second token that is too short
    "RFM_API_TOKENS": ["short", "abcdefgh ijklmnopq", "0123456789abcdef,tiny"],
    "RFM_API_ERASE_TOKENS": ["short", "0123456789abcdef,tiny"],
}

# Plain text, taken as given: no value of these is refused at start (SASL on without a user
# fails when the broker refuses it).
NOT_VALIDATED = {
    "RFM_KAFKA_SASL_USERNAME",
    "RFM_KAFKA_SASL_PASSWORD",
}

CASES = [(var, value) for var, values in BAD_VALUES.items() for value in values]


def test_every_setting_of_the_table_has_a_wrong_value_or_is_listed_as_free_text() -> None:
    table = {variable for variable, _, _ in settings_table()}
    assert set(BAD_VALUES) | NOT_VALIDATED == table
    assert not set(BAD_VALUES) & NOT_VALIDATED


@pytest.mark.parametrize(("variable", "value"), CASES)
def test_a_wrong_value_in_the_environment_names_its_setting(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(env={variable: value})
    assert variable in str(err.value)


@pytest.mark.parametrize(("variable", "value"), CASES)
def test_a_wrong_value_in_the_config_file_names_its_setting(
    variable: str, value: str, tmp_path: Path
) -> None:
    path = tmp_path / "rfm.toml"
    name = variable.removeprefix("RFM_").lower()
    path.write_text(f"{name} = {_toml_string(value)}\n", encoding="utf-8")
    with pytest.raises(SettingsError) as err:
        load_settings(env={}, config_file=path)
    assert variable in str(err.value) or name in str(err.value)


@pytest.mark.parametrize("variable", sorted(NOT_VALIDATED))
def test_free_text_settings_take_any_value(variable: str) -> None:
    """Documents what is not checked at start: if one of these gains a check, move it up."""
    load_settings(env={variable: "/no/such/file"})


def test_an_empty_ca_file_means_the_system_cas() -> None:
    settings = load_settings(env={"RFM_REDIS_TLS_CA_FILE": "", "RFM_KAFKA_SSL_CA_FILE": " "})
    assert (settings.redis.tls_ca_file, settings.kafka.ssl_ca_file) == ("", "")


def test_the_good_defaults_load() -> None:
    load_settings(env={})


def test_the_environment_wins_over_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "rfm.toml"
    path.write_text('partitions = 0\nscoring = "quintiles"\n', encoding="utf-8")
    settings = load_settings(env={"RFM_PARTITIONS": "3"}, config_file=path)
    assert (settings.kafka.partitions, settings.scoring.mode) == (3, "quintiles")


def test_a_config_file_with_an_unknown_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rfm.toml"
    path.write_text('partitions = 4\nredis_host = "localhost"\n', encoding="utf-8")
    with pytest.raises(SettingsError, match=r"unknown setting\(s\) redis_host"):
        load_settings(env={}, config_file=path)


def test_a_config_file_with_an_env_style_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rfm.toml"
    path.write_text("RFM_PARTITIONS = 4\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="RFM_PARTITIONS"):
        load_settings(env={}, config_file=path)


def test_a_config_file_value_of_the_wrong_shape_names_its_setting(tmp_path: Path) -> None:
    path = tmp_path / "rfm.toml"
    path.write_text("recency_days = [30, 60]\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="RFM_RECENCY_DAYS"):
        load_settings(env={}, config_file=path)


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(SettingsError) as err:
        load_settings(env={}, config_file=path)
    assert "--config" in str(err.value) and str(path) in str(err.value)


def test_a_config_file_that_is_not_toml_is_named(tmp_path: Path) -> None:
    path = tmp_path / "rfm.toml"
    path.write_text("partitions: 4\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="not valid TOML") as err:
        load_settings(env={}, config_file=path)
    assert str(path) in str(err.value)


# ---------------------------------------------------------------------------- the CLI


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No RFM_* variable of the calling shell leaks into main()."""
    for name in list(os.environ):
        if name.startswith("RFM_"):
            monkeypatch.delenv(name)
    # main() configures logging once settings load; not this test process's logging.
    monkeypatch.setattr("logging.config.dictConfig", lambda config: None)
    return monkeypatch


@pytest.mark.parametrize(("variable", "value"), [("RFM_PARTITIONS", "0"), ("RFM_CLOCK", "x")])
def test_cli_exits_2_naming_the_variable_on_stderr(
    variable: str, value: str, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv(variable, value)
    assert main(["segments"]) == EXIT_USAGE
    out, err = capsys.readouterr()
    assert not out
    assert err.startswith("rfm-stream: bad setting: ") and f"{variable}=" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "--config"),  # the file does not exist
        ('colour = "blue"\n', "unknown setting(s) colour"),
        ('log_format = "xml"\n', "RFM_LOG_FORMAT"),
        ("[broken\n", "not valid TOML"),
    ],
)
def test_cli_exits_2_for_a_bad_config_file(
    content: str | None,
    expected: str,
    tmp_path: Path,
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "rfm.toml"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    assert main(["--config", str(path), "segments"]) == EXIT_USAGE
    _, err = capsys.readouterr()
    assert err.startswith("rfm-stream: bad setting: ") and expected in err


def test_cli_exits_2_for_segment_rules_that_do_not_exist(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """RFM_SEGMENTS is checked when the rules load (before any connection), not by the
    settings parser: a preset name that does not exist is still a bad setting."""
    clean_env.setenv("RFM_SEGMENTS", "no-such-preset")
    clean_env.setenv("RFM_REDIS_URL", "redis://127.0.0.1:1/0")  # never reached
    assert main(["segments"]) == EXIT_USAGE
    _, err = capsys.readouterr()
    assert "RFM_SEGMENTS='no-such-preset'" in err


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def test_api_tokens_never_show_and_split_on_commas() -> None:
    first, second = "tok-" + "a" * 20, "tok-" + "b" * 20
    settings = load_settings(env={"RFM_API_TOKENS": f" {first} , {second}"})
    assert settings.api.token_list == (first, second)
    for shown in (repr(settings), str(settings.redacted()), repr(settings.api)):
        assert first not in shown and second not in shown
    with pytest.raises(SettingsError) as err:
        load_settings(env={"RFM_API_TOKENS": f"{first},short-secret"})
    assert "short-secret" not in str(err.value) and first not in str(err.value)
    assert load_settings(env={}).api.token_list == ()
