"""Kafka producer for everything we publish (segment changes and dead letters).

A plain aiokafka producer rather than faust's: the CLI (``rescore``, ``produce``) publishes
without a running faust app, and one code path for both keeps delivery behaviour identical.
``publish`` returns only when the broker has acknowledged every record (acks=all).

Records are grouped by partition into aiokafka batches (``create_batch``/``send_batch``)
instead of one ``send`` each: the per-record future and bookkeeping of ``send`` made the
relay cost about as much CPU per segment change as the hot path per order. Partitions are
chosen by aiokafka's default partitioner (murmur2 of the key, as Java clients do), and a
partition's batches go out in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

# aiokafka sends one batch per partition per request and keeps one request in flight per
# broker, so a publish that fills a second batch for a partition waits a whole produce round
# trip for it: at its default of 16 KiB, a relay round of ~1,200 changes made three, and
# that wait was most of what a change waited for. Real Kafka takes batches up to
# message.max.bytes (1 MiB by default).
BATCH_BYTES = 512 * 1024


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    topic: str
    key: bytes | None
    value: bytes | None  # None: a tombstone (the snapshot topic after an erasure)
    headers: tuple[tuple[str, bytes], ...] = ()


class Publisher:
    def __init__(self, bootstrap: str, **client_options: Any) -> None:
        self._options = dict(
            bootstrap_servers=bootstrap,
            acks="all",
            linger_ms=5,
            max_batch_size=BATCH_BYTES,
            max_request_size=2 * 1024 * 1024,
            **client_options,
        )
        self._producer: AIOKafkaProducer | None = None
        self._partitioner = DefaultPartitioner()

    async def start(self) -> AIOKafkaProducer:
        """Connects on first use: the CLI's read-only commands never touch Kafka."""
        if self._producer is None:
            producer = AIOKafkaProducer(**self._options)
            await producer.start()
            self._producer = producer
        return self._producer

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def publish(self, records: Sequence[OutgoingRecord]) -> None:
        producer = await self.start()
        grouped: dict[tuple[str, int], list[OutgoingRecord]] = {}
        partitions: dict[str, list[int]] = {}
        for r in records:
            if r.topic not in partitions:
                partitions[r.topic] = sorted(await producer.partitions_for(r.topic))
            known = partitions[r.topic]
            partition = self._partitioner(r.key, known, known)
            grouped.setdefault((r.topic, partition), []).append(r)
        acks = []
        for (topic, partition), batch_records in grouped.items():
            batch = producer.create_batch()
            for r in batch_records:
                if not _append(batch, r):  # full: send it, start the next
                    acks.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    if not _append(batch, r):
                        raise ValueError(f"a record for {topic} does not fit in a batch")
            acks.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*acks)


def _append(batch: Any, r: OutgoingRecord) -> bool:
    return (
        batch.append(key=r.key, value=r.value, timestamp=None, headers=list(r.headers)) is not None
    )
