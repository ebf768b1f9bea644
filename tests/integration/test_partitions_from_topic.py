"""The input topic's partitions are what the broker says, never what ``RFM_PARTITIONS`` says.

Platform teams often create topics themselves. With an input topic of 12 partitions and the
default setting of 8, the changes of customers on partitions 8..11 used to stay in their
outboxes for ever (relay, drain and backlog gauge covered ``range(RFM_PARTITIONS)``): 400
first purchases gave 400 profiles but segment changes for only 269 customers, and no alert.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from state.model import Rejection
from state.store import InputRecord
from stream import metrics
from stream.observe import refresh_shared
from tests.faults.common import http_get
from tests.support.generated_state import runtime
from tests.support.harness import (
    Worker,
    accounted,
    outbox_empty,
    produce,
    read_topic,
    rfm_env,
    settings_of,
    wait_until,
)

pytestmark = pytest.mark.integration

CUSTOMERS = 400


async def _create(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


def test_an_input_topic_with_more_partitions_than_the_setting(
    kafka_bootstrap: str, redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    env = rfm_env(
        kafka_bootstrap, redis_url, topic_prefix, tmp_path, RFM_PARTITIONS="8", RFM_CLOCK="event"
    )
    settings = settings_of(env)
    asyncio.run(_create(kafka_bootstrap, settings.kafka.orders_topic, 12))
    events = [
        (
            f"c{i:03d}".encode(),
            orjson.dumps(
                {
                    "order_id": f"o{i}",
                    "customer_id": f"c{i:03d}",
                    "amount": "25.00",
                    "occurred_at": "2026-01-01T00:00:00Z",
                }
            ),
        )
        for i in range(CUSTOMERS)
    ]
    produce(kafka_bootstrap, settings.kafka.orders_topic, events)
    worker = Worker(env, tmp_path / "worker.log").start()
    try:
        wait_until(lambda: accounted(redis_url) == CUSTOMERS, 60, "all applied", worker)
        wait_until(lambda: outbox_empty(redis_url), 30, "every outbox relayed", worker)
        status, body = http_get(worker, "/metrics")
        assert status == 200
        text = body.decode()
        topic = settings.kafka.orders_topic
        assert f'rfm_input_partitions{{topic="{topic}"}} 12.0' in text
        assert f'rfm_input_partitions_differ_from_setting{{topic="{topic}"}} 1.0' in text
    finally:
        assert worker.stop() == 0, worker.log_tail()
    log = worker.log_path.read_text(errors="replace")
    assert "has 12 partitions but RFM_PARTITIONS is 8" in log

    changes = [
        orjson.loads(r.value) for r in read_topic(kafka_bootstrap, settings.kafka.changes_topic)
    ]
    changed = {c["customer_id"] for c in changes}
    assert changed == {f"c{i:03d}" for i in range(CUSTOMERS)}
    assert all(c["previous_segment"] is None for c in changes)


async def test_the_backlog_gauge_counts_every_outbox(redis_url: str) -> None:
    """Outboxes of partitions the settings never mention are counted and drained too."""
    rt = runtime(redis_url, "gauge", "thresholds")
    try:
        records = [
            InputRecord(p, 0, b"k", b"v", Rejection("malformed_json", "test"))
            for p in (0, 3, 9, 11, 40)
        ]
        for record in records:  # one partition per call, as batches come
            await rt.store.apply_orders("orders", [record])
        assert await rt.relay.outboxes() == [0, 3, 9, 11, 40]
        await refresh_shared(rt)
        assert metrics.OUTBOX_BACKLOG._value.get() == len(records)
    finally:
        await rt.close()
