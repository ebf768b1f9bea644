"""Orders published at a fixed rate, as the latency part and the broker's floor send them.

What is published is planned before the clock starts (encoded and partitioned: the
platforms that publish orders run elsewhere, not on the cores being measured): the
throughput workload's events (``bench/workload.py``: the synthetic shop's mix of repeat
customers, refunds, cancels, duplicates and bad records) with, every ``PROBE_EVERY``-th
record, a probe, a purchase of a brand-new customer. A probe always changes a segment
(none -> "new"), so its change event can be told apart and timed; the shop's events load
the pipeline as the throughput part did. Without a workload every record is a probe.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from state.model import iso_utc

PROBE_EVERY = 10
# How long the bench's producer gathers orders before it sends them, as a platform's Kafka
# client would (linger.ms). The embedded broker stores each produced batch as an object and
# its fetch cost grows with their count per partition: alone at 10,500 orders/s, 2 ms
# batches took 26 s of its CPU in 30 s and its p99 from 71 to 703 ms (first to last fifth);
# 10 ms batches 17 s and 74 -> 101 ms. The wait is counted: each order's time is when it
# was due, not when it was sent.
LINGER_S = 0.010


@dataclass(frozen=True, slots=True)
class PlannedOrder:
    probe: str | None  # the probe's customer id; None for a workload event
    key: bytes
    value: bytes
    partition: int


def purchase(customer: str, at_ms: int) -> bytes:
    return orjson.dumps(
        {
            "type": "purchase",
            "order_id": f"o-{customer}",
            "customer_id": customer,
            "amount": "25.00",
            "currency": "USD",
            "occurred_at": iso_utc(at_ms),
        }
    )


def workload_events(rate: float, seconds: float) -> int:
    """How many workload events a run at ``rate`` for ``seconds`` publishes besides probes."""
    total = int(rate * seconds)
    return total - total // PROBE_EVERY


async def plan(
    producer: AIOKafkaProducer,
    topic: str,
    count: int,
    workload: Sequence[tuple[bytes, bytes]] | None,
) -> list[PlannedOrder]:
    """``count`` records: the workload's, in order, with a probe every ``PROBE_EVERY``-th
    (every record a probe without a workload)."""
    partitions = sorted(await producer.partitions_for(topic))
    choose = DefaultPartitioner()
    now = int(time.time() * 1000)
    events = iter(workload or ())
    planned = []
    for n in range(max(1, count)):
        if workload is None or n % PROBE_EVERY == 0:
            probe: str | None = f"lat-{n:07d}"
            key, value = probe.encode(), purchase(probe, now)
        else:
            probe = None
            key, value = next(events)
        planned.append(PlannedOrder(probe, key, value, choose(key, partitions, partitions)))
    return planned


async def publish_at(
    producer: AIOKafkaProducer, topic: str, orders: list[PlannedOrder], rate: float
) -> tuple[dict[str, int], float]:
    """``rate`` records a second; probe id -> the wall time (ms) its order was due.

    Record i is due at start + i / rate. Every ``LINGER_S`` the records due so far go out
    as one aiokafka batch per partition (a ``send`` per record cost the bench ~0.4 of a core
    at 12,000 orders/s, taken from the 2 cores the worker, Redis and the broker share). Each
    record carries its due time, so the wait in the batch and any stall of this loop are in
    the latency measured from it."""
    sent: dict[str, int] = {}
    acks: list[asyncio.Future[Any]] = []
    start, wall_start = time.monotonic(), time.time()
    done = 0
    while done < len(orders):
        due = min(len(orders), int((time.monotonic() - start) * rate) + 1)
        batches: dict[int, Any] = {}
        while done < due:
            order = orders[done]
            at = int((wall_start + done / rate) * 1000)
            batch = batches.get(order.partition)
            if batch is None:
                batch = batches[order.partition] = producer.create_batch()
            if batch.append(key=order.key, value=order.value, timestamp=at) is None:
                acks.append(await producer.send_batch(batch, topic, partition=order.partition))
                batch = batches[order.partition] = producer.create_batch()
                batch.append(key=order.key, value=order.value, timestamp=at)
            if order.probe is not None:
                sent[order.probe] = at
            done += 1
        for partition, batch in batches.items():
            acks.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.sleep(LINGER_S)
    elapsed = time.monotonic() - start
    await asyncio.gather(*acks)
    return sent, elapsed
