"""The operations section: intervals, the web port, logs, the outbox relay's limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from stream.settings.fields import (
    _choice,
    _port,
    _positive_float,
    _positive_int,
    _Section,
    _setting,
    _text,
)

LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["text", "json"]


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
