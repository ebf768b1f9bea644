"""Client security options (TLS, SASL) from settings, for every Kafka and Redis client.

One place builds them, so the worker, the relay, the CLI and the admin client cannot drift
apart; none of them ever logs the values.
"""

from __future__ import annotations

import ssl
from typing import Any

from stream.settings import Settings


def kafka_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if "SSL" not in settings.kafka.security_protocol:
        return None
    return ssl.create_default_context(cafile=settings.kafka.ssl_ca_file or None)


def aiokafka_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for AIOKafkaProducer / AIOKafkaConsumer / AIOKafkaAdminClient."""
    options: dict[str, Any] = {"security_protocol": settings.kafka.security_protocol}
    context = kafka_ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.kafka.security_protocol.startswith("SASL"):
        options.update(
            sasl_mechanism=settings.kafka.sasl_mechanism,
            sasl_plain_username=settings.kafka.sasl_username,
            sasl_plain_password=settings.kafka.sasl_password.get_secret_value(),
        )
    return options


def faust_credentials(settings: Settings) -> Any:
    """``broker_credentials`` for faust, or None for PLAINTEXT."""
    import faust

    protocol = settings.kafka.security_protocol
    context = kafka_ssl_context(settings)
    if protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.kafka.sasl_username,
            password=settings.kafka.sasl_password.get_secret_value(),
            mechanism=settings.kafka.sasl_mechanism,
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def redis_options(settings: Settings) -> dict[str, Any]:
    """Extra keyword arguments for redis.asyncio.from_url (auth and TLS come from the URL)."""
    if settings.redis.url.startswith("rediss://") and settings.redis.tls_ca_file:
        return {"ssl_ca_certs": settings.redis.tls_ca_file}
    return {}
