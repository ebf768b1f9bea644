"""The broker restarts having lost everything (the embedded one keeps topics in memory):
the worker reconnects, recreates its topics, says what happened, and applies the new
records instead of taking them for redeliveries of the old offsets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import redis

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

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]

DAY0 = datetime(2025, 5, 1, tzinfo=UTC)


def purchases(first: int, count: int, prefix: str) -> list[tuple[bytes, bytes]]:
    out = []
    for n in range(first, first + count):
        cid = f"{prefix}{n % 40}"
        at = (DAY0 + timedelta(hours=n)).isoformat()
        out.append(
            (
                cid.encode(),
                orjson.dumps(
                    {"order_id": f"o{n}", "customer_id": cid, "amount": "25.00", "occurred_at": at}
                ),
            )
        )
    return out


def test_broker_that_lost_its_data_is_recovered_from(
    private_kafka, redis_url: str, topic_prefix: str, tmp_path: Path
) -> None:
    broker = private_kafka()
    env = rfm_env(broker.url, redis_url, topic_prefix, tmp_path, RFM_CLOCK="event")
    settings = settings_of(env)
    before, after = purchases(0, 400, "old"), purchases(400, 200, "new")
    worker = Worker(env, tmp_path / "worker.log").start()
    try:
        produce(broker.url, settings.kafka.orders_topic, before)
        wait_until(lambda: accounted(redis_url) == 400, 60, "first records applied", worker)
        # Nothing in flight to the broker when it dies: tansu acknowledges records sent
        # right after a topic is recreated and then does not return some of them (seen
        # with a bare aiokafka producer, no worker: a publish in flight at the kill, then
        # the first publish after the recreation fails with UnknownError and its retry is
        # acknowledged with 10 of 200 records never read back). Real Kafka keeps what it
        # acknowledged; that quirk is not what this test is about.
        wait_until(lambda: outbox_empty(redis_url), 60, "first changes relayed", worker)
        broker.kill()
        broker.restart()  # empty: every topic and offset is gone
        wait_until(
            lambda: settings.kafka.orders_topic in _topics(broker.url),
            60,
            "topics recreated",
            worker,
        )
        produce(broker.url, settings.kafka.orders_topic, after)
        wait_until(lambda: accounted(redis_url) == 600, 120, "new records applied", worker)
        wait_until(lambda: outbox_empty(redis_url), 60, "outbox relayed", worker)
    finally:
        assert worker.stop() == 0, worker.log_tail()
    log = worker.log_path.read_text()
    assert "the topic was recreated or the broker lost its data" in log
    stats = {
        k.decode(): int(v) for k, v in redis.Redis.from_url(redis_url).hgetall("rfm:stats").items()
    }
    assert stats["applied"] == 600
    changes = [orjson.loads(m.value) for m in read_topic(broker.url, settings.kafka.changes_topic)]
    # every new customer's first segment reaches the recreated topic
    assert {c["customer_id"] for c in changes} >= {f"new{n}" for n in range(40)}


def _topics(bootstrap: str) -> set[str]:
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient

    async def names() -> set[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            return set(await admin.list_topics())
        finally:
            await admin.close()

    try:
        return asyncio.run(names())
    except Exception:
        return set()
