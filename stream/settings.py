"""All settings, typed, in sections, and validated whichever way they are built.

Each setting comes from its ``RFM_<NAME>`` variable in the environment, else from
``--config FILE.toml`` (key ``<name>``: the variable's name in lower case without ``RFM_``,
one flat table), else its default. A wrong value fails at start with a message naming the
variable, never later in the middle of a stream. ``Settings`` groups them in sections
(``settings.kafka.bootstrap``, ``settings.redis.url``, ``settings.scoring.mode``,
``settings.operations.web_port``, ``settings.api.port``); the variable names stay flat, as
documented. Every section parses its fields in ``__post_init__``, so ``load_settings``,
``Settings.with_values`` and even ``dataclasses.replace`` or a direct constructor call all
check them the same way.
The README's table is made from these declarations (``python -m stream.settings`` prints it;
tests/unit/test_readme_settings.py keeps the README in step).

Why not pydantic-settings, the usual choice: it would bring pydantic and pydantic-core (a
compiled extension of several megabytes, in an image that otherwise needs neither) to
replace some 250 lines of parsers and loader, and it would not remove most of them. Its
sources map nested sections to ``RFM_KAFKA__BOOTSTRAP``-style names or a nested TOML
file, whereas the contract here is flat (``RFM_APP_ID`` and ``RFM_PARTITIONS`` live in the
Kafka section without a ``KAFKA_`` in their names) and the ``--config`` file is one flat
table: both would need custom settings sources. Its errors name model paths
(``kafka.partitions``), not ``RFM_PARTITIONS``, so every ``ValidationError`` would have to be
translated back to the variable, and values like ``30,60,90,120`` would need per-field
"no JSON decoding" annotations and validators anyway. What it would give, ``SecretStr`` and
``Literal`` checking, is a few lines here (``Secret``, ``_choice``), and the README table
comes from field metadata either way.
"""

from __future__ import annotations

import os
import re
import ssl
import sys
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import Field, dataclass, field, fields, replace
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, get_args

from state.money import CurrencyTable, is_currency_code, minor_unit_exponent, parse_rates
from state.scoring import Thresholds

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
ScoringMode = Literal["thresholds", "quintiles"]
Clock = Literal["wall", "event"]
LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["text", "json"]


class SettingsError(ValueError):
    """A setting has a wrong value; the message names it."""


class Secret:
    """A value that never shows: its repr and str are ``***`` (empty when unset), so it can
    sit in settings that end up in logs and tracebacks. ``get_secret_value()`` is for the
    one place that hands it to a client."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __str__(self) -> str:
        return "***" if self._value else ""

    def __repr__(self) -> str:
        return f"Secret({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


# ---------------------------------------------------------------------------- parsers
# Each takes the text of a value (from the environment, the config file, or a typed value
# rendered back to text) and returns the typed value, or raises ValueError saying why.


def _choice(kind: Any) -> Callable[[str], str]:
    allowed: tuple[str, ...] = get_args(kind)

    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return text

    return parse


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
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


def _free_text(text: str) -> str:
    return text


def _secret(text: str) -> Secret:
    return Secret(text)


def _redis_url(text: str) -> str:
    url = _text(text)
    if not url.lower().startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must be a redis://, rediss:// or unix:// URL")
    return url


# RFC 6750's b64token: what a bearer token may contain, so it fits an Authorization header.
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
MIN_TOKEN_CHARS = 16


def _api_tokens(text: str) -> Secret:
    """Comma-separated bearer tokens (several, so one can be rotated out while the next is
    in use). Never quoted in an error: the message says which one by position only."""
    tokens = [t.strip() for t in text.split(",")] if text.strip() else []
    for position, token in enumerate(tokens, start=1):
        if len(token) < MIN_TOKEN_CHARS or not _BEARER_TOKEN.fullmatch(token):
            raise ValueError(
                f"token #{position} must be at least {MIN_TOKEN_CHARS} characters of "
                "A-Z a-z 0-9 - . _ ~ + / (then = padding only)"
            )
    return Secret(",".join(tokens))


def _ca_file(text: str) -> str:
    """Empty (the system's CAs), or a readable PEM file of CA certificates."""
    if not text.strip():
        return ""
    path = text.strip()
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=path)
    except ssl.SSLError as exc:
        raise ValueError(f"not a PEM file of CA certificates ({exc.reason})") from None
    except OSError as exc:
        raise ValueError(f"cannot read the CA file: {exc.strerror}") from None
    return path


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


def _as_text(value: Any) -> str:
    """A value as the text its parser reads: a typed value round-trips, a TOML array of
    numbers becomes the comma-separated form of the environment."""
    if isinstance(value, Secret):
        return value.get_secret_value()
    if isinstance(value, list | tuple):
        return ",".join(str(x) for x in value)
    return str(value)


def _redact_url(text: str) -> str:
    if "://" in text and "@" in text:
        scheme, rest = text.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return text


def _shown(f: Field[Any], text: str) -> str:
    """A value as it may appear in a repr, a log line or an error message."""
    if f.metadata["secret"]:
        return "***" if text else ""
    return _redact_url(text)


def _setting(
    env: str, default: str, parse: Callable[[str], Any], doc: str, *, secret: bool = False
) -> Any:
    return field(
        default=parse(default),
        metadata={"env": env, "parse": parse, "doc": doc, "raw": default, "secret": secret},
    )


def _setting_fields(section: Any) -> list[Field[Any]]:
    return [f for f in fields(section) if "env" in f.metadata]


# ---------------------------------------------------------------------------- sections


class _Section:
    """Parses and checks every field on construction; shows no secret in its repr."""

    def __post_init__(self) -> None:
        for f in _setting_fields(self):
            text = _as_text(getattr(self, f.name))
            try:
                value = f.metadata["parse"](text)
            except (ValueError, ArithmeticError) as exc:
                raise SettingsError(f"{f.metadata['env']}={_shown(f, text)!r}: {exc}") from exc
            object.__setattr__(self, f.name, value)

    def redacted(self) -> dict[str, str]:
        """``RFM_*`` variable -> value for display, credentials masked."""
        return {
            f.metadata["env"]: _shown(f, _as_text(getattr(self, f.name)))
            for f in _setting_fields(self)
        }

    def __repr__(self) -> str:
        values = ((f.name, getattr(self, f.name)) for f in _setting_fields(self))
        shown = ", ".join(
            f"{name}={(_redact_url(v) if isinstance(v, str) else v)!r}" for name, v in values
        )
        return f"{type(self).__name__}({shown})"


@dataclass(frozen=True, repr=False)
class KafkaSettings(_Section):
    bootstrap: str = _setting(
        "RFM_KAFKA_BOOTSTRAP", "127.0.0.1:9092", _text, "Kafka bootstrap servers"
    )
    security_protocol: SecurityProtocol = _setting(
        "RFM_KAFKA_SECURITY_PROTOCOL",
        "PLAINTEXT",
        _choice(SecurityProtocol),
        "Kafka security protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
    )
    sasl_mechanism: SaslMechanism = _setting(
        "RFM_KAFKA_SASL_MECHANISM",
        "PLAIN",
        _choice(SaslMechanism),
        "Kafka SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
    )
    sasl_username: str = _setting("RFM_KAFKA_SASL_USERNAME", "", _free_text, "Kafka SASL user")
    sasl_password: Secret = _setting(
        "RFM_KAFKA_SASL_PASSWORD", "", _secret, "Kafka SASL password (never shown)", secret=True
    )
    ssl_ca_file: str = _setting(
        "RFM_KAFKA_SSL_CA_FILE",
        "",
        _ca_file,
        "CA file (PEM) to verify the Kafka brokers; empty: the system's CAs",
    )
    app_id: str = _setting(
        "RFM_APP_ID", "rfm-stream", _text, "Faust app id: the Kafka consumer group"
    )
    orders_topic: str = _setting(
        "RFM_ORDERS_TOPIC", "rfm.orders", _text, "Input topic of order events"
    )
    dlq_topic: str = _setting(
        "RFM_DLQ_TOPIC", "rfm.orders.dlq", _text, "Dead-letter topic for bad events"
    )
    changes_topic: str = _setting(
        "RFM_CHANGES_TOPIC", "rfm.segment-changes", _text, "Output topic of segment changes"
    )
    partitions: int = _setting(
        "RFM_PARTITIONS",
        "8",
        _positive_int,
        "Partitions of the topics this app creates (an existing topic keeps its own count)",
    )
    replication_factor: int = _setting(
        "RFM_REPLICATION_FACTOR", "1", _positive_int, "Replication of created topics"
    )
    session_timeout: float = _setting(
        "RFM_SESSION_TIMEOUT", "10", _positive_float, "Kafka consumer session timeout, seconds"
    )
    heartbeat_interval: float = _setting(
        "RFM_HEARTBEAT_INTERVAL", "1", _positive_float, "Kafka consumer heartbeat, seconds"
    )
    rebalance_timeout: float = _setting(
        "RFM_REBALANCE_TIMEOUT", "5", _positive_float, "Kafka rebalance timeout, seconds"
    )
    fetch_max_wait_ms: int = _setting(
        "RFM_FETCH_MAX_WAIT_MS",
        "100",
        _positive_int,
        "Longest a fetch waits at the broker for new orders, milliseconds",
    )
    batch_size: int = _setting(
        "RFM_BATCH_SIZE", "1000", _positive_int, "Most events applied in one batch"
    )


@dataclass(frozen=True, repr=False)
class RedisSettings(_Section):
    url: str = _setting(
        "RFM_REDIS_URL",
        "redis://127.0.0.1:6379/0",
        _redis_url,
        "Redis URL (redis://, rediss:// or unix://); its password is never shown",
    )
    prefix: str = _setting("RFM_REDIS_PREFIX", "rfm", _text, "Prefix of every Redis key")
    tls_ca_file: str = _setting(
        "RFM_REDIS_TLS_CA_FILE",
        "",
        _ca_file,
        "CA file (PEM) to verify Redis over TLS (rediss://); empty: the system's CAs",
    )
    socket_timeout: float = _setting(
        "RFM_REDIS_SOCKET_TIMEOUT",
        "10",
        _positive_float,
        "Longest a Redis command waits for its answer, seconds",
    )
    connect_timeout: float = _setting(
        "RFM_REDIS_CONNECT_TIMEOUT",
        "5",
        _positive_float,
        "Longest a connection to Redis may take to open, seconds",
    )
    health_check_interval: float = _setting(
        "RFM_REDIS_HEALTH_CHECK_INTERVAL",
        "30",
        _positive_float,
        "A Redis connection idle this long is checked (PING) before its next use, seconds",
    )


@dataclass(frozen=True, repr=False)
class ScoringSettings(_Section):
    mode: ScoringMode = _setting(
        "RFM_SCORING",
        "thresholds",
        _choice(ScoringMode),
        "Scoring mode: thresholds or quintiles",
    )
    segments: str = _setting(
        "RFM_SEGMENTS", "default", _text, "Segment rules: preset (default, classic) or TOML file"
    )
    clock: Clock = _setting(
        "RFM_CLOCK",
        "wall",
        _choice(Clock),
        "Recency measured against now (wall) or the latest event time (event)",
    )
    currency: str = _setting("RFM_CURRENCY", "USD", _currency, "Currency that spend is kept in")
    currency_rates: str = _setting(
        "RFM_CURRENCY_RATES", "", _free_text, "Rates of other currencies, e.g. EUR=1.08,GBP=1.27"
    )
    recency_days: tuple[int, int, int, int] = _setting(
        "RFM_RECENCY_DAYS",
        "30,60,90,120",
        _four_ints,
        "Thresholds: most days since the last purchase for R=5,4,3,2",
    )
    frequency: tuple[int, int, int, int] = _setting(
        "RFM_FREQUENCY", "2,4,7,10", _four_ints, "Thresholds: fewest orders for F=2,3,4,5"
    )
    monetary: tuple[str, str, str, str] = _setting(
        "RFM_MONETARY", "100,400,700,1000", _four_amounts, "Thresholds: least spend for M=2,3,4,5"
    )
    max_future_skew: float = _setting(
        "RFM_MAX_FUTURE_SKEW", "300", _positive_float, "Seconds an event time may lie in the future"
    )
    currencies: CurrencyTable = field(init=False, repr=False, compare=False)
    thresholds: Thresholds = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
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


@dataclass(frozen=True, repr=False)
class OperationsSettings(_Section):
    rescore_interval: float = _setting(
        "RFM_RESCORE_INTERVAL", "60", _positive_float, "Seconds between periodic rescoring passes"
    )
    web_port: int = _setting(
        "RFM_WEB_PORT", "6066", _port, "HTTP port of the worker: /metrics, /healthz, /readyz"
    )
    data_dir: str = _setting(
        "RFM_DATA_DIR", "var/rfm-stream", _text, "Directory for the worker's local files"
    )
    log_level: LogLevel = _setting(
        "RFM_LOG_LEVEL", "info", _choice(LogLevel), "Log level: debug, info, warning or error"
    )
    log_format: LogFormat = _setting(
        "RFM_LOG_FORMAT",
        "text",
        _choice(LogFormat),
        "Logs as text or one JSON object a line (json)",
    )
    gap_check_interval: float = _setting(
        "RFM_GAP_CHECK_INTERVAL",
        "10",
        _positive_float,
        "Seconds between comparisons of the group's committed offsets with the offsets Redis "
        "applied (catches up writes Redis lost)",
    )
    relay_interval: float = _setting(
        "RFM_RELAY_INTERVAL",
        "0.5",
        _positive_float,
        "Longest the outbox relay sleeps between drains when no batch wakes it, seconds",
    )
    relay_lock_timeout: int = _setting(
        "RFM_RELAY_LOCK_TIMEOUT",
        "10",
        _positive_int,
        "Seconds a relay's claim on an outbox lasts unless renewed (each round renews it)",
    )
    relay_chunk: int = _setting(
        "RFM_RELAY_CHUNK",
        "2000",
        _positive_int,
        "Most records the relay reads from one outbox per round",
    )
    gauge_refresh_interval: float = _setting(
        "RFM_GAUGE_REFRESH_INTERVAL",
        "5",
        _positive_float,
        "Seconds between refreshes of the gauges read from Redis and the broker "
        "(segment sizes, outbox backlog, consumer lag)",
    )


@dataclass(frozen=True, repr=False)
class ApiSettings(_Section):
    """``rfm-stream serve``: the read-only query API, its own process."""

    host: str = _setting(
        "RFM_API_HOST",
        "127.0.0.1",
        _text,
        "Address the query API (rfm-stream serve) listens on; beyond loopback it needs tokens",
    )
    port: int = _setting(
        "RFM_API_PORT", "8080", _port, "HTTP port of the query API: /v1/..., /metrics"
    )
    tokens: Secret = _setting(
        "RFM_API_TOKENS",
        "",
        _api_tokens,
        "Bearer tokens of the query API, comma-separated (never shown)",
        secret=True,
    )

    @property
    def token_list(self) -> tuple[str, ...]:
        """The accepted tokens; for the one place that compares them (stream/api/auth.py)."""
        raw = self.tokens.get_secret_value()
        return tuple(raw.split(",")) if raw else ()


_SECTIONS: tuple[tuple[str, str, type[_Section]], ...] = (
    ("kafka", "Kafka", KafkaSettings),
    ("redis", "Redis", RedisSettings),
    ("scoring", "Scoring", ScoringSettings),
    ("operations", "Operations", OperationsSettings),
    ("api", "Query API", ApiSettings),
)


def _all_fields() -> Iterator[tuple[str, Field[Any]]]:
    for name, _, section in _SECTIONS:
        for f in _setting_fields(section):
            yield name, f


# RFM_* variable -> (section attribute, field name)
_VARIABLES: dict[str, tuple[str, str]] = {f.metadata["env"]: (s, f.name) for s, f in _all_fields()}


@dataclass(frozen=True, repr=False)
class Settings:
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    scoring: ScoringSettings = field(default_factory=ScoringSettings)
    operations: OperationsSettings = field(default_factory=OperationsSettings)
    api: ApiSettings = field(default_factory=ApiSettings)

    def __post_init__(self) -> None:
        for name, _, section in _SECTIONS:
            if not isinstance(getattr(self, name), section):
                raise TypeError(f"Settings.{name} must be a {section.__name__}")

    def with_values(self, values: Mapping[str, str]) -> Settings:
        """These settings with some replaced, given as ``RFM_*`` variables and parsed and
        checked as ``load_settings`` does (``rfm-stream demo`` points them at its servers)."""
        changes: dict[str, dict[str, str]] = {}
        for variable, text in values.items():
            if variable not in _VARIABLES:
                raise SettingsError(f"{variable}: no such setting")
            section, name = _VARIABLES[variable]
            changes.setdefault(section, {})[name] = text
        return replace(self, **{s: replace(getattr(self, s), **kw) for s, kw in changes.items()})

    def redacted(self) -> dict[str, str]:
        """Every setting for display, ``RFM_*`` variable -> value, credentials masked."""
        shown: dict[str, str] = {}
        for name, _, _ in _SECTIONS:
            shown.update(getattr(self, name).redacted())
        return shown

    def __repr__(self) -> str:
        # Settings end up in tracebacks and logs: never with a secret in them.
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name, _, _ in _SECTIONS)
        return f"Settings({inner})"


def load_settings(
    env: Mapping[str, str] | None = None, config_file: str | Path | None = None
) -> Settings:
    """Settings from ``env`` (default: the process environment), then ``config_file``, then
    the defaults; raises SettingsError naming the first wrong value."""
    env = os.environ if env is None else env
    from_file = {} if config_file is None else _read_config(Path(config_file))
    raw: dict[str, dict[str, Any]] = {name: {} for name, _, _ in _SECTIONS}
    for section, f in _all_fields():
        variable = f.metadata["env"]
        value = env.get(variable, from_file.get(_config_key(variable)))
        if value is not None:
            raw[section][f.name] = value
    return Settings(
        kafka=KafkaSettings(**raw["kafka"]),
        redis=RedisSettings(**raw["redis"]),
        scoring=ScoringSettings(**raw["scoring"]),
        operations=OperationsSettings(**raw["operations"]),
        api=ApiSettings(**raw["api"]),
    )


def _config_key(variable: str) -> str:
    return variable.removeprefix("RFM_").lower()


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"--config {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"--config {path}: not valid TOML: {exc}") from exc
    known = {_config_key(variable) for variable in _VARIABLES}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SettingsError(f"--config {path}: unknown setting(s) {', '.join(unknown)}")
    return data


def settings_table() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) for every setting, section by section."""
    return [(f.metadata["env"], f.metadata["raw"], f.metadata["doc"]) for _, f in _all_fields()]


def markdown_table() -> str:
    """The README's settings tables, one per section: ``python -m stream.settings``."""
    lines: list[str] = []
    for _, title, section in _SECTIONS:
        lines += ["", f"**{title}**", "", "| variable | default | meaning |", "|---|---|---|"]
        for f in _setting_fields(section):
            default = f"`{f.metadata['raw']}`" if f.metadata["raw"] else ""
            row = f"| `{f.metadata['env']}` | {default} | {f.metadata['doc']} |"
            lines.append(row.replace("|  |", "| |"))
    return "\n".join(lines[1:]) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown_table())
