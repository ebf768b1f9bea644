"""Creates the topics this app reads and writes, if they are missing, and reads how many
partitions the input topic really has.

``RFM_PARTITIONS`` is only what topics are created with: a topic that exists already (made
by a platform team, or grown since) keeps its own count, and nothing in the worker may
assume the setting. A difference is logged and shown as a metric, so it is seen.
"""

from __future__ import annotations

import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from stream import metrics
from stream.security import aiokafka_options
from stream.settings import Settings

log = logging.getLogger(__name__)


async def ensure_topics(settings: Settings) -> int | None:
    """Create missing topics; returns the input topic's partition count (None if unknown)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka.bootstrap, **aiokafka_options(settings)
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            settings.kafka.orders_topic,
            settings.kafka.dlq_topic,
            settings.kafka.changes_topic,
        ]
        # The snapshot topic keeps the latest profile of each customer: compacted.
        compacted = {settings.kafka.snapshot_topic} - {""}
        wanted += sorted(compacted)
        missing = [t for t in wanted if t not in existing]
        if missing:
            new = [
                NewTopic(
                    t,
                    settings.kafka.partitions,
                    settings.kafka.replication_factor,
                    topic_configs={"cleanup.policy": "compact"} if t in compacted else None,
                )
                for t in missing
            ]
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was faster
                await admin.create_topics(new)
            log.info(
                "created topics %s with %d partitions",
                ", ".join(missing),
                settings.kafka.partitions,
            )
        return await _input_partitions(admin, settings)
    finally:
        await admin.close()


async def input_partitions(settings: Settings) -> int | None:
    """The input topic's partition count by the broker's metadata, reported as metrics."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka.bootstrap, **aiokafka_options(settings)
    )
    await admin.start()
    try:
        return await _input_partitions(admin, settings)
    finally:
        await admin.close()


async def _input_partitions(admin: AIOKafkaAdminClient, settings: Settings) -> int | None:
    topic = settings.kafka.orders_topic
    # Metadata of every topic, not of this one by name: asking for a missing topic by name
    # creates it on a broker with auto.create.topics.enable (Kafka's default), with the
    # broker's default partition count, before the workers' own topic creation could run.
    described = await admin.describe_topics(None)
    partitions = [d.get("partitions") or [] for d in described if d.get("topic") == topic]
    if not partitions or not partitions[0]:
        return None
    count = len(partitions[0])
    metrics.INPUT_PARTITIONS.labels(topic).set(count)
    differs = count != settings.kafka.partitions
    metrics.INPUT_PARTITIONS_DIFFER.labels(topic).set(int(differs))
    if differs:
        log.warning(
            "%s has %d partitions but RFM_PARTITIONS is %d: the worker follows the topic "
            "(RFM_PARTITIONS only sets what new topics are created with)",
            topic,
            count,
            settings.kafka.partitions,
        )
    return count
