"""Creates the topics this app reads and writes, if they are missing."""

from __future__ import annotations

import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from stream.security import aiokafka_options
from stream.settings import Settings

log = logging.getLogger(__name__)


async def ensure_topics(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, **aiokafka_options(settings)
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [settings.orders_topic, settings.dlq_topic, settings.changes_topic]
        missing = [t for t in wanted if t not in existing]
        if not missing:
            return
        new = [NewTopic(t, settings.partitions, settings.replication_factor) for t in missing]
        with contextlib.suppress(TopicAlreadyExistsError):  # another worker was faster
            await admin.create_topics(new)
        log.info("created topics %s with %d partitions", ", ".join(missing), settings.partitions)
    finally:
        await admin.close()
