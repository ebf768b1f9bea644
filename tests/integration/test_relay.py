"""The outbox relay's drain against real Redis and a real broker: every outbox moves in
rounds of one Redis round trip and one publish, so these pin down what those rounds may
never get wrong: order, completeness, other relays' claims, and failures."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
import redis.asyncio as aioredis

from state.keys import Keys
from stream.publisher import OutgoingRecord, Publisher
from stream.relay import CHUNK, OutboxRelay
from tests.support.harness import read_topic

pytestmark = pytest.mark.integration


class BrokenPublisher(Publisher):
    """The broker refuses the publish after the records were handed over."""

    async def publish(self, records: Sequence[OutgoingRecord]) -> None:
        raise ConnectionError("broker went away")


async def _fill(client: aioredis.Redis, keys: Keys, sizes: dict[int, int]) -> None:
    for partition, n in sizes.items():
        async with client.pipeline(transaction=False) as pipe:
            for i in range(n):
                kind = "dlq" if i % 7 == 6 else "seg"
                fields = {"t": kind, "k": f"c-{partition}", "v": f"{partition}:{i}"}
                pipe.xadd(keys.outbox(partition), fields)  # type: ignore[arg-type]
            await pipe.execute()


async def _xrange_calls(client: aioredis.Redis) -> int:
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_xrange", {}).get("calls", 0))


async def _lengths(client: aioredis.Redis, keys: Keys, partitions: range) -> list[int]:
    return [int(await client.xlen(keys.outbox(p))) for p in partitions]


async def test_drain_publishes_every_outbox_in_order_and_empties_them(
    redis_url: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    client = aioredis.from_url(redis_url)
    keys = Keys(f"{topic_prefix}-relay")
    changes, dead = f"{topic_prefix}.changes", f"{topic_prefix}.dlq"
    publisher = Publisher(kafka_bootstrap)
    sizes = {0: 2 * CHUNK + 17, 3: 5, 5: 1}  # outbox 0 takes three rounds
    try:
        await _fill(client, keys, sizes)
        relay = OutboxRelay(client, keys, publisher, changes, dead)
        assert await relay.drain(range(8)) == sum(sizes.values())
        assert await _lengths(client, keys, range(8)) == [0] * 8
        assert [k async for k in client.scan_iter(match=f"{keys.prefix}:relay-lock:*")] == []
        assert await relay.drain(range(8)) == 0  # nothing is published twice
    finally:
        await publisher.stop()
        await client.aclose()

    published = [
        *await asyncio.to_thread(read_topic, kafka_bootstrap, changes),
        *await asyncio.to_thread(read_topic, kafka_bootstrap, dead),
    ]
    by_outbox: dict[int, list[int]] = {}
    for r in published:
        partition, i = (int(x) for x in r.value.decode().split(":"))
        assert r.topic == (dead if i % 7 == 6 else changes)
        by_outbox.setdefault(partition, []).append(i)
    for partition, n in sizes.items():
        seg = [i for i in by_outbox[partition] if i % 7 != 6]
        assert seg == [i for i in range(n) if i % 7 != 6], f"outbox {partition} out of order"
        assert sorted(by_outbox[partition]) == list(range(n))


async def test_drain_leaves_an_outbox_another_relay_holds(
    redis_url: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    client = aioredis.from_url(redis_url)
    keys = Keys(f"{topic_prefix}-relay")
    publisher = Publisher(kafka_bootstrap)
    try:
        await _fill(client, keys, {1: 10, 2: 10})
        await client.set(keys.relay_lock(2), b"other-worker", ex=60)
        relay = OutboxRelay(client, keys, publisher, f"{topic_prefix}.c", f"{topic_prefix}.d")
        assert await relay.drain(range(4)) == 10
        assert await _lengths(client, keys, range(4)) == [0, 0, 10, 0]
        assert await client.get(keys.relay_lock(2)) == b"other-worker"
        assert await client.get(keys.relay_lock(1)) is None

        # While another relay holds every outbox, a drain reads none of them.
        for p in range(4):
            await client.set(keys.relay_lock(p), b"other-worker", ex=60)
        reads = await _xrange_calls(client)
        assert await relay.drain(range(4)) == 0
        assert await _xrange_calls(client) == reads
        assert await _lengths(client, keys, range(4)) == [0, 0, 10, 0]
    finally:
        await publisher.stop()
        await client.aclose()


async def test_a_failed_publish_keeps_the_entries_and_gives_the_outboxes_up(
    redis_url: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    client = aioredis.from_url(redis_url)
    keys = Keys(f"{topic_prefix}-relay")
    broken = BrokenPublisher(kafka_bootstrap)
    publisher = Publisher(kafka_bootstrap)
    changes, dead = f"{topic_prefix}.changes", f"{topic_prefix}.dlq"
    try:
        await _fill(client, keys, {0: 30, 6: 3})
        with pytest.raises(ConnectionError):
            await OutboxRelay(client, keys, broken, changes, dead).drain(range(8))
        assert await _lengths(client, keys, range(8)) == [30, 0, 0, 0, 0, 0, 3, 0]
        assert [k async for k in client.scan_iter(match=f"{keys.prefix}:relay-lock:*")] == []
        # The next relay publishes all of it.
        assert await OutboxRelay(client, keys, publisher, changes, dead).drain(range(8)) == 33
        assert await _lengths(client, keys, range(8)) == [0] * 8
    finally:
        await publisher.stop()
        await client.aclose()


async def test_a_relay_whose_claim_expired_stops_reading_that_outbox(
    redis_url: str, kafka_bootstrap: str, topic_prefix: str
) -> None:
    """While this relay waited for the broker its claim on outbox 0 expired and another
    worker took it: what is added afterwards is the other worker's to publish."""
    client = aioredis.from_url(redis_url)
    keys = Keys(f"{topic_prefix}-relay")

    class TakenOver(Publisher):
        async def publish(self, records: Sequence[OutgoingRecord]) -> None:
            await super().publish(records)
            if await client.get(keys.relay_lock(0)) != b"other-worker":
                await client.set(keys.relay_lock(0), b"other-worker", ex=60)
                await _fill(client, keys, {0: 4, 1: 2})

    publisher = TakenOver(kafka_bootstrap)
    try:
        await _fill(client, keys, {0: 10, 1: 10})
        relay = OutboxRelay(client, keys, publisher, f"{topic_prefix}.c", f"{topic_prefix}.d")
        assert await relay.drain(range(2)) == 22  # 10 + 10, then outbox 1's 2 more
        assert await _lengths(client, keys, range(2)) == [4, 0]
        assert await client.get(keys.relay_lock(0)) == b"other-worker"
    finally:
        await publisher.stop()
        await client.aclose()
