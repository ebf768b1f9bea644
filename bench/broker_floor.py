"""The broker's own share of the latency: orders published exactly as in the latency part,
read by a plain aiokafka consumer with the worker's fetch settings, nothing in between.

Measured in the same run, on a restarted broker, at the same rate, for the same time, on a
topic with the same partitions. The embedded tansu broker keeps everything in memory and
its fetch costs more the more batches a partition holds (seen: one producer and one
consumer at 10,500 records/s on 8 partitions, a batch per partition every 2 ms, took tansu
to 26 s of CPU in 30 s and p99 71 -> 703 ms; every 10 ms, 17 s and a flat p99 ~85 ms):
this floor says how much of the end-to-end figure the broker takes before any of our code
runs. Real Kafka indexes its logs and does not grow so, which is why the floor is reported
beside the target, never subtracted from it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.env import Stack, create_topic
from bench.latency import by_fifth, stats
from bench.paced import plan, publish_at
from stream.settings import KafkaSettings

TOPIC = "bench-floor.orders"


def measure(
    stack: Stack, rate: float, seconds: float, workload: Sequence[tuple[bytes, bytes]] | None
) -> dict[str, Any]:
    """The same records as the latency part's (``workload`` with probes), probes timed."""
    stack.kafka.restart()
    asyncio.run(create_topic(stack.bootstrap, TOPIC))
    return asyncio.run(_run(stack.bootstrap, rate, seconds, workload))


async def _run(
    bootstrap: str, rate: float, seconds: float, workload: Sequence[tuple[bytes, bytes]] | None
) -> dict[str, Any]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=KafkaSettings().fetch_max_wait_ms,  # the worker's default
    )
    await producer.start()
    await consumer.start()
    received: dict[bytes, float] = {}  # probe key -> when it was read
    probes: set[bytes] = set()

    async def read() -> None:
        while True:
            got = await consumer.getmany(timeout_ms=100, max_records=1000)
            now = time.time() * 1000
            for records in got.values():
                for r in records:
                    if r.key in probes:
                        received.setdefault(r.key, now)

    reader = asyncio.ensure_future(read())
    try:
        orders = await plan(producer, TOPIC, int(rate * seconds), workload)
        probes.update(o.key for o in orders if o.probe is not None)
        sent, _ = await publish_at(producer, TOPIC, orders, rate)
        deadline = time.monotonic() + 30
        while len(received) < len(sent) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await consumer.stop()
        await producer.stop()
    in_order = [received[k.encode()] - t for k, t in sent.items() if k.encode() in received]
    outcome = {"orders": len(sent), "missing": len(sent) - len(in_order)}
    return outcome | stats(sorted(in_order)) | by_fifth(in_order)
