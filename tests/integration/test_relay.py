"""The outbox relay's drain against real Redis and a real broker: every outbox moves in
rounds of one Redis round trip and one publish, so these pin down what those rounds may
never get wrong: order, completeness, other relays' claims, and failures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import orjson
import pytest
import redis.asyncio as aioredis

from state.change_events import change_record, render, render_snapshot
from state.keys import Keys
from state.model import Scores
from stream.publisher import OutgoingRecord, Publisher
from stream.relay import CHUNK, OutboxRelay
from tests.support.harness import read_topic

pytestmark = pytest.mark.integration


class BrokenPublisher(Publisher):
    """The broker refuses the publish after the records were handed over."""

    async def publish(self, records: Sequence[OutgoingRecord]) -> None:
        raise ConnectionError("broker went away")


@dataclass
class Outboxes:
    """A Redis client and key prefix private to one test, and the publishers it made
    (stopped, with the client, when the test ends)."""

    client: aioredis.Redis
    keys: Keys
    bootstrap: str
    prefix: str
    publishers: list[Publisher] = field(default_factory=list)

    def publisher(self, cls: type[Publisher] = Publisher) -> Publisher:
        self.publishers.append(cls(self.bootstrap))
        return self.publishers[-1]

    def relay(self, publisher: Publisher) -> OutboxRelay:
        return OutboxRelay(
            self.client, self.keys, publisher, f"{self.prefix}.changes", f"{self.prefix}.dlq"
        )

    async def lengths(self, partitions: range) -> list[int]:
        return [int(await self.client.xlen(self.keys.outbox(p))) for p in partitions]

    async def locks(self) -> list[bytes]:
        return [k async for k in self.client.scan_iter(match=f"{self.keys.prefix}:relay-lock:*")]


@pytest.fixture
async def outboxes(
    redis_url: str, kafka_bootstrap: str, topic_prefix: str
) -> AsyncIterator[Outboxes]:
    # socket_timeout as the worker's client (stream/runtime.py): redis-py then sends every
    # command through asyncio.wait_for
    client = aioredis.from_url(redis_url, socket_timeout=10)
    box = Outboxes(client, Keys(f"{topic_prefix}-relay"), kafka_bootstrap, topic_prefix)
    try:
        yield box
    finally:
        for publisher in box.publishers:
            await publisher.stop()
        await box.client.aclose()


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


async def test_drain_publishes_every_outbox_in_order_and_empties_them(
    outboxes: Outboxes,
) -> None:
    sizes = {0: 2 * CHUNK + 17, 3: 5, 5: 1}  # outbox 0 takes three rounds
    await _fill(outboxes.client, outboxes.keys, sizes)
    relay = outboxes.relay(outboxes.publisher())
    assert await relay.drain(range(8)) == sum(sizes.values())
    assert await outboxes.lengths(range(8)) == [0] * 8
    assert await outboxes.locks() == []
    assert await relay.drain(range(8)) == 0  # nothing is published twice

    changes, dead = f"{outboxes.prefix}.changes", f"{outboxes.prefix}.dlq"
    published = [
        *await asyncio.to_thread(read_topic, outboxes.bootstrap, changes),
        *await asyncio.to_thread(read_topic, outboxes.bootstrap, dead),
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


async def test_drain_leaves_an_outbox_another_relay_holds(outboxes: Outboxes) -> None:
    client, keys = outboxes.client, outboxes.keys
    await _fill(client, keys, {1: 10, 2: 10})
    await client.set(keys.relay_lock(2), b"other-worker", ex=60)
    relay = outboxes.relay(outboxes.publisher())
    assert await relay.drain(range(4)) == 10
    assert await outboxes.lengths(range(4)) == [0, 0, 10, 0]
    assert await client.get(keys.relay_lock(2)) == b"other-worker"
    assert await client.get(keys.relay_lock(1)) is None

    # While another relay holds every outbox, a drain reads none of them.
    for p in range(4):
        await client.set(keys.relay_lock(p), b"other-worker", ex=60)
    reads = await _xrange_calls(client)
    assert await relay.drain(range(4)) == 0
    assert await _xrange_calls(client) == reads
    assert await outboxes.lengths(range(4)) == [0, 0, 10, 0]


async def test_a_failed_publish_keeps_the_entries_and_gives_the_outboxes_up(
    outboxes: Outboxes,
) -> None:
    await _fill(outboxes.client, outboxes.keys, {0: 30, 6: 3})
    with pytest.raises(ConnectionError):
        await outboxes.relay(outboxes.publisher(BrokenPublisher)).drain(range(8))
    assert await outboxes.lengths(range(8)) == [30, 0, 0, 0, 0, 0, 3, 0]
    assert await outboxes.locks() == []
    # The next relay publishes all of it.
    assert await outboxes.relay(outboxes.publisher()).drain(range(8)) == 33
    assert await outboxes.lengths(range(8)) == [0] * 8


async def test_a_relay_whose_claim_expired_stops_reading_that_outbox(
    outboxes: Outboxes,
) -> None:
    """While this relay waited for the broker its claim on outbox 0 expired and another
    worker took it: what is added afterwards is the other worker's to publish."""
    client, keys = outboxes.client, outboxes.keys

    class TakenOver(Publisher):
        async def publish(self, records: Sequence[OutgoingRecord]) -> None:
            await super().publish(records)
            if await client.get(keys.relay_lock(0)) != b"other-worker":
                await client.set(keys.relay_lock(0), b"other-worker", ex=60)
                await _fill(client, keys, {0: 4, 1: 2})

    await _fill(client, keys, {0: 10, 1: 10})
    relay = outboxes.relay(outboxes.publisher(TakenOver))
    assert await relay.drain(range(2)) == 22  # 10 + 10, then outbox 1's 2 more
    assert await outboxes.lengths(range(2)) == [4, 0]
    assert await client.get(keys.relay_lock(0)) == b"other-worker"


async def test_change_records_are_published_as_rendered_events(outboxes: Outboxes) -> None:
    """Scripts queue change records; the relay publishes the event rendered from each. An
    event an earlier version queued as JSON is published as it is, in its place."""
    client, keys = outboxes.client, outboxes.keys
    legacy = b'{"event_id":"e0","customer_id":"c-1"}'
    records = [change_record(n, "new", "loyal", Scores(5, 2, n, 3), 2, 4550, 2, "EUR",
                             1_767_225_600_000, "order", 3, 9000, 365)
               for n in (1, 2)]  # fmt: skip
    await client.xadd(keys.outbox(4), {"t": "chg", "k": "c-1", "v": records[0]})
    await client.xadd(keys.outbox(4), {"t": "seg", "k": "c-1", "v": legacy, "h": ""})
    await client.xadd(keys.outbox(4), {"t": "chg", "k": "c-1", "v": records[1]})
    assert await outboxes.relay(outboxes.publisher()).drain(range(8)) == 3

    topic = f"{outboxes.prefix}.changes"
    published = await asyncio.to_thread(read_topic, outboxes.bootstrap, topic)
    assert [r.key for r in published] == [b"c-1"] * 3
    assert [r.value for r in published] == [
        render(b"c-1", records[0]),
        legacy,
        render(b"c-1", records[1]),
    ]
    assert orjson.loads(published[2].value)["m"] == 2


async def test_each_change_is_followed_by_its_snapshot_and_an_erasure_by_a_tombstone(
    outboxes: Outboxes,
) -> None:
    """With a snapshot topic, each change record also gives the customer's profile as of
    it there (same key), and an erased record a tombstone; the events are as without."""
    client, keys = outboxes.client, outboxes.keys
    first = 1_767_225_600_000 - 40 * 86_400_000
    change = change_record(1, None, "new", Scores(5, 1, 1, 0), 1, 100, 2, "EUR",
                           1_767_225_600_000, "order", 1, 100, 365, None, first,
                           first)  # fmt: skip
    erased = b"2,new,,,0,0,2,EUR,1767225700000,erased,0,0,365,,,,"
    await client.xadd(keys.outbox(1), {"t": "chg", "k": "c-1", "v": change})
    await client.xadd(keys.outbox(1), {"t": "chg", "k": "c-1", "v": erased})
    relay = OutboxRelay(
        client,
        keys,
        outboxes.publisher(),
        f"{outboxes.prefix}.changes",
        f"{outboxes.prefix}.dlq",
        snapshot_topic=f"{outboxes.prefix}.snapshots",
    )
    assert await relay.drain(range(8)) == 2
    events = await asyncio.to_thread(read_topic, outboxes.bootstrap, f"{outboxes.prefix}.changes")
    assert [r.value for r in events] == [render(b"c-1", change), render(b"c-1", erased)]
    snaps = await asyncio.to_thread(read_topic, outboxes.bootstrap, f"{outboxes.prefix}.snapshots")
    assert [(r.key, r.value) for r in snaps] == [
        (b"c-1", render_snapshot(b"c-1", change)),
        (b"c-1", None),
    ]
    assert orjson.loads(snaps[0].value or b"")["first_purchase_at"] == "2025-11-22T00:00:00.000Z"


async def test_a_change_record_that_cannot_be_rendered_is_dead_lettered(
    outboxes: Outboxes,
) -> None:
    """A broken record (a bug, never input) must not stop the changes queued behind it."""
    client, keys = outboxes.client, outboxes.keys
    good = change_record(1, None, "new", Scores(5, 1, 1, 0), 1, 100, 2, "EUR", 1, "order", 1,
                         100, 365)  # fmt: skip
    await client.xadd(keys.outbox(2), {"t": "chg", "k": "c-1", "v": good})
    await client.xadd(keys.outbox(2), {"t": "chg", "k": "c-2", "v": b"1,new"})
    await client.xadd(keys.outbox(2), {"t": "chg", "k": "c-3", "v": good})
    assert await outboxes.relay(outboxes.publisher()).drain(range(8)) == 3
    assert await outboxes.lengths(range(8)) == [0] * 8

    changes, dead = f"{outboxes.prefix}.changes", f"{outboxes.prefix}.dlq"
    published = await asyncio.to_thread(read_topic, outboxes.bootstrap, changes)
    assert [(r.key, r.value) for r in published] == [
        (b"c-1", render(b"c-1", good)),
        (b"c-3", render(b"c-3", good)),
    ]
    [letter] = await asyncio.to_thread(read_topic, outboxes.bootstrap, dead)
    assert (letter.key, letter.value) == (b"c-2", b"1,new")
    headers = dict(letter.headers)
    assert headers["rfm.dlq.reason"] == b"malformed_change_record"
    assert b"c-2" in headers["rfm.dlq.message"]


async def test_the_relay_loop_stops_when_cancelled_just_as_it_is_woken(
    outboxes: Outboxes,
) -> None:
    """A worker's shutdown cancels the relay loop, and the hot path may wake it in the same
    moment. asyncio.wait_for on Python 3.11 then returns the wake-up and drops the
    cancellation: the loop ran on and the worker hung until SIGKILL (seen once in CI)."""
    relay = outboxes.relay(outboxes.publisher())
    wake = asyncio.Event()
    task = asyncio.create_task(relay.run_forever(wake, every=30))
    await asyncio.sleep(0.05)  # the loop is waiting to be woken
    wake.set()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=5)
    assert done == {task}, "the relay loop ignored its cancellation"
    assert task.cancelled()


async def test_the_relay_loop_stops_when_a_cancellation_lands_in_a_redis_call(
    outboxes: Outboxes,
) -> None:
    """redis-py sends each command through asyncio.wait_for when a socket timeout is set
    (the worker's client has one), and on Python 3.11 wait_for drops a cancellation that
    lands as the send completes: the command returns as if nothing happened. The loop must
    stop anyway. Cancelled at every point of its first few hundred loop steps (a drain of
    eight outboxes is a few Redis calls), the loop stops every time."""
    relay = outboxes.relay(outboxes.publisher())
    ignored = []
    for steps in range(300):
        task = asyncio.create_task(relay.run_forever(asyncio.Event(), every=0))
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=2)
        if done != {task}:
            ignored.append(steps)
            task.cancel()
            await asyncio.wait([task], timeout=2)
    assert ignored == [], f"cancelled after these many steps, the loop ran on: {ignored}"
