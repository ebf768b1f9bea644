"""``produce_file`` against a real broker: every good row arrives, keyed by its customer."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from stream.produce import format_report, produce_file
from stream.publisher import Publisher

pytestmark = pytest.mark.integration

CSV = """customer_id,order_id,amount,occurred_at,currency,type
c1,o1,129.90,2026-11-25T10:00:00.000Z,USD,
c2,o2,5.00,1795600800000,,purchase
c1,o3,1.00
c1,o1,20.00,2026-11-26T10:00:00Z,USD,refund
c3,o4,,2026-11-26T11:00:00Z,,cancel
"""


async def create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()


async def read_back(bootstrap: str, topic: str, expected: int) -> list[tuple[bytes, bytes]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    received: list[tuple[bytes, bytes]] = []
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while len(received) < expected and asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            received += [(m.key, m.value) for ms in batches.values() for m in ms]
    finally:
        await consumer.stop()
    return received


async def test_produce_file_sends_good_rows_and_reports_the_bad_one(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    topic = f"{topic_prefix}orders"
    await create_topic(kafka_bootstrap, topic)
    path = tmp_path / "orders.csv"
    path.write_text(CSV, encoding="utf-8")
    publisher = Publisher(kafka_bootstrap)
    try:
        report = await produce_file(path, publisher, topic, batch=2)
    finally:
        await publisher.stop()

    assert report.sent == 4
    assert report.bad == [(4, "expected 6 columns, got 3")]
    assert "line 4: expected 6 columns" in format_report(report)

    received = await read_back(kafka_bootstrap, topic, 4)
    assert [key for key, _ in received] == [b"c1", b"c2", b"c1", b"c3"]
    events = [orjson.loads(value) for _, value in received]
    assert [e["order_id"] for e in events] == ["o1", "o2", "o1", "o4"]
    assert events[0]["amount"] == "129.90" and events[0]["currency"] == "USD"
    assert events[1]["occurred_at"] == 1795600800000
    assert events[2]["type"] == "refund" and events[3] == {
        "customer_id": "c3",
        "order_id": "o4",
        "occurred_at": "2026-11-26T11:00:00Z",
        "type": "cancel",
    }
