"""Kafka producer for everything we publish (segment changes and dead letters).

A plain aiokafka producer rather than faust's: the CLI (``rescore``, ``produce``) publishes
without a running faust app, and one code path for both keeps delivery behaviour identical.
``publish`` returns only when the broker has acknowledged every record (acks=all).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


class Publisher:
    def __init__(self, bootstrap: str, **client_options: Any) -> None:
        self._options = dict(
            bootstrap_servers=bootstrap,
            acks="all",
            linger_ms=5,
            max_request_size=2 * 1024 * 1024,
            **client_options,
        )
        self._producer: AIOKafkaProducer | None = None

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
        futures = [
            await producer.send(r.topic, r.value, key=r.key, headers=list(r.headers) or None)
            for r in records
        ]
        await asyncio.gather(*futures)
