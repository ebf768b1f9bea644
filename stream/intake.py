"""Batches straight from faust's consumer, under faust's own offset bookkeeping.

faust's stream path costs 70-80 us of CPU per event: its drain loop wraps every message in
``wait_first(callback(message), ...)`` (tasks per message), then each agent builds an Event
per message. The pipeline works per batch, so for the topics registered with
:meth:`BatchApp.batch_topic` the drain hands each ``getmany`` result to a handler in one call
and afterwards acks its offsets the way ``Consumer.ack`` does. Commits, rebalances, offset
gaps (transaction markers, compaction) and faust's livelock monitor keep working; faust's own
topics (the leader topic) keep the stock per-message path.

faust also hard-codes ``fetch_max_wait_ms=1500`` in its aiokafka driver. Real Kafka answers a
fetch as soon as data arrives, so that only bounds idle polling there, but a broker that
holds fetches for the full wait (tansu) adds it to every event's latency: the wait is a
setting here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

# Records of one topic, as aiokafka returns them (ConsumerRecord), oldest first per partition.
BatchHandler = Callable[[Sequence[Any]], Awaitable[None]]


class BatchApp(faust.App):
    """A faust app whose consumer hands registered topics to a handler batch by batch."""

    def __init__(self, *args: Any, fetch_max_wait_ms: int = 100, **kwargs: Any) -> None:
        self.batch_handlers: dict[str, BatchHandler] = {}
        self.fetch_max_wait_ms = fetch_max_wait_ms
        super().__init__(*args, **kwargs)

    def batch_topic(self, topic: faust.TopicT, handler: BatchHandler) -> None:
        """Subscribe to ``topic`` (as faust's leader assignor does) with no agent on it."""
        self.batch_handlers[topic.get_topic_name()] = handler
        self.topics.add(topic)

    def _new_transport(self) -> Any:
        return BatchTransport(self.conf.broker_consumer, self)


class FetchWaitConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Read by AIOKafkaConsumer.start() when it builds its fetcher.
        consumer._fetch_max_wait_ms = cast(BatchApp, self.app).fetch_max_wait_ms
        return consumer


class BatchConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> FetchWaitConsumerThread:
        return FetchWaitConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:
        """Replaces faust's per-message drain; started and cancelled by faust's Fetcher."""
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                self.diag.set_flag(CONSUMER_FETCHING)
                records, active = await self._wait_next_records(1.0)
                generation = self.app.consumer_generation_id
                await self.sleep(0)
                if records and not self.should_stop:
                    if self.flow_active:
                        await self._drain_batch(records, active, generation)
                    else:  # as faust's getmany: a rebalance started, seek back to committed
                        await self.perform_seek()
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _drain_batch(self, records: Any, active: Any, generation: int) -> None:
        batches: dict[str, list[Any]] = {}
        taken: list[tuple[TP, list[int]]] = []
        handlers = cast(BatchApp, self.app).batch_handlers
        monitor = self.app.monitor
        for tp, tp_records in records.items():
            if active is not None and tp not in active and tp not in self._buffered_partitions:
                continue
            if tp.topic not in handlers:
                await self._deliver_one_by_one(tp, tp_records)
                continue
            fresh = await self._fresh(tp, tp_records)
            if not fresh:
                continue
            batches.setdefault(tp.topic, []).extend(fresh)
            taken.append((tp, [r.offset for r in fresh]))
            if monitor is not None:
                monitor.track_tp_end_offset(tp, self.highwater(tp))
                monitor.stream_inbound_time[tp] = time.monotonic()
        cancelled = False
        for topic, batch in batches.items():
            cancelled = await _finish(handlers[topic](batch)) or cancelled
        # If partitions moved meanwhile, their new owner gets these records again (the state
        # store recognises applied offsets); acking them here could commit for a partition
        # this worker no longer holds.
        if self.app.consumer_generation_id == generation:
            for tp, offsets in taken:
                self._ack_offsets(tp, offsets)
        if cancelled:  # stopping: the batch is applied and acked for faust's final commit
            raise asyncio.CancelledError
        if self._commit_every is not None and self._n_acked >= self._commit_every:
            self._n_acked = 0
            await self.commit()

    async def _fresh(self, tp: TP, tp_records: Sequence[Any]) -> list[Any]:
        """Records past the read offset; holes in the offsets are recorded as gaps so the
        committed offset can move past them (faust's drain does the same per message)."""
        previous = self._read_offset[tp]
        acks = self.app.topics.acks_enabled_for(tp.topic)
        fresh = []
        for record in tp_records:
            offset = record.offset
            if previous is not None and offset < previous:
                continue
            if previous and offset - previous > 1 and acks:
                await self._add_gap(tp, previous + 1, offset)
            fresh.append(record)
            previous = offset
        self._read_offset[tp] = previous
        return fresh

    def _ack_offsets(self, tp: TP, offsets: Sequence[int]) -> None:
        """``Consumer.ack`` for a batch of offsets of one partition (no Message objects)."""
        if not self.app.topics.acks_enabled_for(tp.topic):
            return
        with ack_lock:
            committed = self._committed_offset[tp]
            index = self._acked_index[tp]
            new = [o for o in offsets if (committed is None or o >= committed) and o not in index]
            index.update(new)
            self._acked[tp].extend(new)
            self._n_acked += len(new)
            notify(self._waiting_for_ack)

    async def _deliver_one_by_one(self, tp: TP, tp_records: Sequence[Any]) -> None:
        """faust's stock path, for the topics its own agents and assignors read."""
        for record in await self._fresh(tp, tp_records):
            message = self._to_message(tp, record)
            await self.wait_first(self.callback(message), self.suspend_flow.wait())


class BatchTransport(faust_aiokafka.Transport):
    Consumer = BatchConsumer


async def _finish(work: Awaitable[None]) -> bool:
    """Run a batch to its end even if the drain is cancelled (rebalance, SIGTERM) meanwhile,
    so nothing is cut off between applying it and acking it; True if it was cancelled."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        return True
    return False
