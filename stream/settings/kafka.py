"""The Kafka section: brokers, credentials, topics, the consumer group."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from stream.settings.fields import (
    Secret,
    _ca_file,
    _choice,
    _free_text,
    _positive_float,
    _positive_int,
    _secret,
    _Section,
    _setting,
    _text,
)


def _optional_topic(text: str) -> str:
    """A topic name, or empty for none; blanks alone are a mistake, not a choice."""
    if text and not text.strip():
        raise ValueError("must be a topic name, or empty for none")
    return text.strip()


SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


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
    snapshot_topic: str = _setting(
        "RFM_SNAPSHOT_TOPIC",
        "rfm.customer-segments",
        _optional_topic,
        "Compacted topic of each customer's profile as of its last segment change (empty: none)",
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
