"""The Redis section: where the state lives and how long a command may wait."""

from __future__ import annotations

from dataclasses import dataclass

from stream.settings.fields import _ca_file, _positive_float, _redis_url, _Section, _setting, _text


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
