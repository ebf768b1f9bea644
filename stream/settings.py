"""All settings, typed and validated at start.

Each setting comes from ``RFM_<NAME>`` in the environment, else from ``--config FILE.toml``
(key ``<name>`` in lower case), else its default. A wrong value fails at start with a message
naming the setting, never later in the middle of a stream.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal
from pathlib import Path
from typing import Any

from state.money import CurrencyTable, is_currency_code, minor_unit_exponent, parse_rates
from state.scoring import Thresholds


class SettingsError(ValueError):
    """A setting has a wrong value; the message names it."""


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return text

    return parse


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError("must be a number > 0")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("must be a whole number > 0")
    return value


def _text(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text.strip()


def _redis_url(text: str) -> str:
    url = _text(text)
    if not url.lower().startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must be a redis://, rediss:// or unix:// URL")
    return url


def _port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise ValueError("must be a TCP port, 1-65535")
    return value


def _currency(text: str) -> str:
    if not is_currency_code(text):
        raise ValueError("must be an ISO 4217 code such as USD")
    return text


def _four_ints(text: str) -> tuple[int, int, int, int]:
    parts = tuple(int(p) for p in text.split(","))
    if len(parts) != 4:
        raise ValueError("needs four comma-separated whole numbers")
    return parts


def _four_amounts(text: str) -> tuple[str, str, str, str]:
    parts = tuple(p.strip() for p in text.split(","))
    if len(parts) != 4:
        raise ValueError("needs four comma-separated amounts")
    for p in parts:
        Decimal(p)
    return parts


def _setting(default: str, parse: Callable[[str], Any], doc: str) -> Any:
    return field(default=parse(default), metadata={"parse": parse, "doc": doc, "raw": default})


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str = _setting("127.0.0.1:9092", _text, "Kafka bootstrap servers")
    redis_url: str = _setting(
        "redis://127.0.0.1:6379/0", _redis_url, "Redis URL (redis:// or rediss://)"
    )
    redis_prefix: str = _setting("rfm", _text, "Prefix of every Redis key")
    redis_tls_ca_file: str = _setting("", str, "CA file to verify Redis over TLS (rediss://)")
    kafka_security_protocol: str = _setting(
        "PLAINTEXT",
        _choice("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
        "Kafka security protocol",
    )
    kafka_sasl_mechanism: str = _setting(
        "PLAIN", _choice("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"), "Kafka SASL mechanism"
    )
    kafka_sasl_username: str = _setting("", str, "Kafka SASL user")
    kafka_sasl_password: str = _setting("", str, "Kafka SASL password (never logged)")
    kafka_ssl_ca_file: str = _setting("", str, "CA file to verify the Kafka brokers")
    app_id: str = _setting("rfm-stream", _text, "Faust app id: the Kafka consumer group")
    orders_topic: str = _setting("rfm.orders", _text, "Input topic of order events")
    dlq_topic: str = _setting("rfm.orders.dlq", _text, "Dead-letter topic for bad events")
    changes_topic: str = _setting("rfm.segment-changes", _text, "Output topic of segment changes")
    partitions: int = _setting(
        "8",
        _positive_int,
        "Partitions of the topics this app creates (an existing topic keeps its own count)",
    )
    replication_factor: int = _setting("1", _positive_int, "Replication of created topics")
    scoring: str = _setting("thresholds", _choice("thresholds", "quintiles"), "Scoring mode")
    segments: str = _setting(
        "default", _text, "Segment rules: preset (default, classic) or TOML file"
    )
    clock: str = _setting(
        "wall", _choice("wall", "event"), "Recency measured against now or the latest event time"
    )
    currency: str = _setting("USD", _currency, "Currency that spend is kept in")
    currency_rates: str = _setting("", str, "Rates of other currencies, e.g. EUR=1.08,GBP=1.27")
    recency_days: tuple[int, int, int, int] = _setting(
        "30,60,90,120", _four_ints, "Thresholds: most days since the last purchase for R=5,4,3,2"
    )
    frequency: tuple[int, int, int, int] = _setting(
        "2,4,7,10", _four_ints, "Thresholds: fewest orders for F=2,3,4,5"
    )
    monetary: tuple[str, str, str, str] = _setting(
        "100,400,700,1000", _four_amounts, "Thresholds: least spend for M=2,3,4,5"
    )
    rescore_interval: float = _setting(
        "60", _positive_float, "Seconds between periodic rescoring passes"
    )
    max_future_skew: float = _setting(
        "300", _positive_float, "Seconds an event time may lie in the future"
    )
    batch_size: int = _setting("1000", _positive_int, "Most events applied in one batch")
    fetch_max_wait_ms: int = _setting(
        "100", _positive_int, "Longest a fetch waits at the broker for new orders, milliseconds"
    )
    web_port: int = _setting("6066", _port, "HTTP port of the worker: /metrics, /healthz, /readyz")
    data_dir: str = _setting("var/rfm-stream", _text, "Directory for the worker's local files")
    log_level: str = _setting("info", _choice("debug", "info", "warning", "error"), "Log level")
    log_format: str = _setting(
        "text", _choice("text", "json"), "Logs as text or one JSON object a line"
    )
    session_timeout: float = _setting(
        "10", _positive_float, "Kafka consumer session timeout, seconds"
    )
    heartbeat_interval: float = _setting("1", _positive_float, "Kafka consumer heartbeat, seconds")
    rebalance_timeout: float = _setting("5", _positive_float, "Kafka rebalance timeout, seconds")
    currencies: CurrencyTable = field(init=False, repr=False, compare=False)
    thresholds: Thresholds = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            rates = parse_rates(self.currency_rates) if self.currency_rates.strip() else {}
        except ValueError as exc:
            raise SettingsError(f"RFM_CURRENCY_RATES: {exc}") from exc
        object.__setattr__(self, "currencies", CurrencyTable(self.currency, rates))
        try:
            thresholds = Thresholds.from_major_units(
                self.recency_days, self.frequency, self.monetary, self.exponent
            )
        except ValueError as exc:
            raise SettingsError(f"RFM_RECENCY_DAYS / RFM_FREQUENCY / RFM_MONETARY: {exc}") from exc
        object.__setattr__(self, "thresholds", thresholds)

    @property
    def exponent(self) -> int:
        return minor_unit_exponent(self.currency)

    def redacted(self) -> dict[str, str]:
        """Settings for display, with credentials in URLs and passwords masked."""
        shown = {}
        for f in _setting_fields():
            value = str(getattr(self, f.name))
            if "password" in f.name and value:
                value = "***"
            elif "://" in value and "@" in value:
                scheme, rest = value.split("://", 1)
                value = f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
            shown[f.name] = value
        return shown

    def __repr__(self) -> str:
        # Settings end up in tracebacks and logs: never with a secret in them.
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in self.redacted().items()) + ")"


def _setting_fields() -> list[Any]:
    return [f for f in fields(Settings) if "parse" in f.metadata]


def load_settings(
    env: Mapping[str, str] | None = None,
    config_file: str | Path | None = None,
    **overrides: Any,
) -> Settings:
    env = os.environ if env is None else env
    from_file: dict[str, Any] = {}
    if config_file is not None:
        from_file = _read_config(Path(config_file))
    values: dict[str, Any] = {}
    for f in _setting_fields():
        var = f"RFM_{f.name.upper()}"
        raw: Any = env.get(var, from_file.get(f.name))
        if raw is None:
            continue
        text = ",".join(str(x) for x in raw) if isinstance(raw, list) else str(raw)
        try:
            values[f.name] = f.metadata["parse"](text)
        except (ValueError, ArithmeticError) as exc:
            raise SettingsError(f"{var}={text!r}: {exc}") from exc
    values.update(overrides)
    return Settings(**values)


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"--config {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"--config {path}: not valid TOML: {exc}") from exc
    known = {f.name for f in _setting_fields()}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SettingsError(f"--config {path}: unknown setting(s) {', '.join(unknown)}")
    return data


def settings_table() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) for every setting: the README's table is made from this."""
    return [
        (f"RFM_{f.name.upper()}", f.metadata["raw"], f.metadata["doc"]) for f in _setting_fields()
    ]
