"""Fills gaps: input records Kafka considers consumed but Redis never applied.

Redis keeps the last applied offset of every input partition with the state, in the same
atomic step. If a batch starts after the offset Redis expects next, the records in between
were committed to Kafka but are not in Redis: Redis restarted and lost its last writes (AOF
``everysec``), or was restored from an older snapshot. They are read again here, straight
from the partition with a consumer of our own (faust keeps managing the group's offsets), and
applied before the batch that revealed the gap.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from state.store import Gap

log = logging.getLogger(__name__)
EMPTY_FETCHES_BEFORE_GIVING_UP = 10


class GapFiller:
    def __init__(self, bootstrap: str, topic: str, batch: int, **client_options: Any) -> None:
        self.bootstrap, self.topic, self.batch = bootstrap, topic, batch
        self.options = client_options
        self.filled = 0

    async def committed_gaps(
        self, group_id: str, applied: dict[int, int], partitions: Iterable[int]
    ) -> list[Gap]:
        """Gaps between what the consumer group committed and what Redis applied.

        Without this, a partition whose last writes Redis lost would only be caught up when
        its next record arrives.
        """
        tps = [TopicPartition(self.topic, p) for p in partitions]
        if not tps:
            return []
        # A consumer that only reads the group's offsets: it never joins the group.
        reader = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=group_id,
            enable_auto_commit=False,
            **self.options,
        )
        await reader.start()
        try:
            reader.assign(tps)
            committed = {tp.partition: await reader.committed(tp) for tp in tps}
        finally:
            await reader.stop()
        gaps = []
        for partition, offset in committed.items():
            start = applied.get(partition, -1) + 1
            if offset is not None and start < offset:
                gaps.append(Gap(partition, start, offset))
        return gaps

    async def fill(
        self,
        gap: Gap,
        floors: dict[int, int],
        apply: Callable[[Sequence[Any]], Awaitable[object]],
    ) -> None:
        """Apply offsets [gap.start, gap.first) of the partition, then mark them handled."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            **self.options,
        )
        await consumer.start()
        tp = TopicPartition(self.topic, gap.partition)
        try:
            consumer.assign([tp])
            beginning = (await consumer.beginning_offsets([tp]))[tp]
            start = max(gap.start, beginning)
            if start < gap.first:
                log.warning(
                    "%s partition %d: offsets %d..%d were consumed but are not in Redis "
                    "(did Redis lose writes?); applying them again",
                    self.topic,
                    gap.partition,
                    start,
                    gap.first - 1,
                )
                consumer.seek(tp, start)
                await self._read(consumer, tp, gap, floors, apply)
        finally:
            await consumer.stop()
        floors[gap.partition] = max(floors.get(gap.partition, 0), gap.first)

    async def _read(
        self,
        consumer: AIOKafkaConsumer,
        tp: TopicPartition,
        gap: Gap,
        floors: dict[int, int],
        apply: Callable[[Sequence[Any]], Awaitable[object]],
    ) -> None:
        empty = 0
        while empty < EMPTY_FETCHES_BEFORE_GIVING_UP:
            got = await consumer.getmany(tp, timeout_ms=500, max_records=self.batch)
            records = [r for r in got.get(tp, []) if r.offset < gap.first]
            if records:
                empty = 0
                floors[gap.partition] = records[0].offset
                await apply(records)
                self.filled += len(records)
            else:
                empty += 1
            if await consumer.position(tp) >= gap.first:
                return
        log.error(
            "%s partition %d: could not read offsets up to %d (position %d); moving on",
            self.topic,
            gap.partition,
            gap.first,
            await consumer.position(tp),
        )
