"""The bucketed layout's own guarantees, against a real Redis: state of another layout is
refused, and a due list is only dropped once every customer on it has been rescored."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from state.keys import HOUR_MS
from state.model import MS_PER_DAY, OrderEvent
from state.store import InputRecord
from stream.runtime import Runtime
from stream.settings import load_settings

pytestmark = pytest.mark.integration

START = 1_767_225_600_000  # 2026-01-01


def runtime(redis_url: str, prefix: str) -> Runtime:
    env = {
        "RFM_REDIS_URL": redis_url,
        "RFM_KAFKA_BOOTSTRAP": "127.0.0.1:1",  # never contacted: nothing is published
        "RFM_REDIS_PREFIX": prefix,
        # whole histories: these tests run the Python scoring route too, which knows no window
        "RFM_WINDOW_DAYS": "0",
    }
    return Runtime.build(load_settings(env=env))


def purchase(offset: int, cid: str, order: str, when: int) -> InputRecord:
    event = OrderEvent("purchase", order, cid, 5_000, when)
    return InputRecord(0, offset, cid.encode(), b"{}", event)


async def test_state_of_another_layout_is_refused(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    fresh, old, future = (runtime(redis_url, p) for p in ("fresh", "old", "future"))
    try:
        await fresh.store.apply_orders("orders", [purchase(0, "a", "a-1", START)])
        assert await client.get("fresh:layout") == b"2"
        # a version before buckets kept offsets but no marker; a later one another marker
        await client.hset("old:offsets", "orders:0", 41)
        await client.set("future:layout", "3")
        for rt, written in ((old, "layout 1"), (future, "layout 3")):
            with pytest.raises(ResponseError, match=written):
                await rt.store.apply_orders("orders", [purchase(42, "a", "a-1", START)])
            with pytest.raises(ResponseError, match=written):
                await rt.rescorer.full_pass(START)
        assert await client.hget("old:offsets", "orders:0") == b"41"  # nothing was applied
        assert await client.exists("old:layout", "old:dirty", "future:dirty") == 0
    finally:
        await client.aclose()
        for rt in (fresh, old, future):
            await rt.close()


async def test_due_list_outlives_a_customer_the_pass_could_not_write(redis_url: str) -> None:
    rt = runtime(redis_url, "due")
    client = aioredis.Redis.from_url(redis_url)
    keys = rt.keys
    try:
        # bought at START: R5 until day 30, due (R drops to 4) at day 31
        applied = await rt.store.apply_orders("orders", [purchase(0, "a", "a-1", START)])
        await rt.rescorer.rescore_states(applied.states, START, "order")
        due = START + 31 * MS_PER_DAY
        hour = due // HOUR_MS
        assert await client.lrange(keys.due(hour), 0, -1) != []
        as_of = due + 2 * HOUR_MS  # the list's hour is past: the pass may drop it

        chunk = await rt.store.due_take(as_of, None, 1000)
        assert chunk.ids == ["a"] and [h for h, _ in chunk.hours] == [hour]
        stale = await rt.reader.customers(chunk.ids)
        # meanwhile an order of another day changes "a" but not its last purchase: its due
        # time stays in the same hour, so it is listed nowhere else
        more = await rt.store.apply_orders("orders", [purchase(1, "a", "a-0", START - 1)])
        assert more.states[0].due_ms == due
        step = await rt.rescorer.rescore_states([s for s in stale if s], as_of, "recency")
        assert step.lost == ["a"]
        await rt.store.due_retire(as_of, chunk.hours, step.lost)
        listed = await client.lrange(keys.due(hour), 0, -1)
        assert any(entry.endswith(b":a") for entry in listed), listed

        # the next pass finds it, rescores it, and then drops the list
        result = await rt.rescorer.due_pass(as_of)
        assert (result.examined, result.rescored) == (1, 1)
        state = await rt.reader.customer("a")
        assert state is not None and state.r == 4 and state.due_ms == START + 61 * MS_PER_DAY
        assert await client.exists(keys.due(hour)) == 0
        assert await client.zscore(keys.due_hours, hour) is None
    finally:
        await client.aclose()
        await rt.close()


@pytest.mark.parametrize("in_redis", [True, False])
async def test_a_customer_listed_twice_is_rescored_once(redis_url: str, in_redis: bool) -> None:
    """Two entries of one customer in the lists a due pass reads (its due time left an hour
    and came back, or due_retire listed it again): it is rescored once (version + 1)."""
    rt = runtime(redis_url, f"twice-{in_redis}")
    client = aioredis.Redis.from_url(redis_url)
    keys = rt.keys
    try:
        applied = await rt.store.apply_orders("orders", [purchase(0, "a", "a-1", START)])
        await rt.rescorer.rescore_states(applied.states, START, "order")
        hour = (START + 31 * MS_PER_DAY) // HOUR_MS
        [entry] = await client.lrange(keys.due(hour), 0, -1)
        await client.rpush(keys.due(hour), entry)
        await client.rpush(keys.due(hour - 5), entry)
        await client.zadd(keys.due_hours, {str(hour - 5): hour - 5})
        before = await rt.reader.customer("a")
        outbox = keys.outbox(applied.states[0].partition)
        events = await client.xlen(outbox)

        result = await rt.rescorer.due_pass(START + 32 * MS_PER_DAY, in_redis=in_redis)
        assert (result.examined, result.rescored) == (1, 1)
        after = await rt.reader.customer("a")
        assert before is not None and after is not None
        assert (after.r, after.version) == (4, before.version + 1)
        assert after.seq == before.seq + result.changes
        assert await client.xlen(outbox) == events + result.changes
    finally:
        await client.aclose()
        await rt.close()
