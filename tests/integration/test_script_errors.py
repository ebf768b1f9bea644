"""Scripts that fail part-way write nothing: Redis does not roll a script back, so each one
reads and computes first and writes at its end (state/lua/apply_orders.lua,
rescore_in_redis.lua, write_scores.lua).

* A key of the wrong type where a call writes fails the whole call before any write: the
  store is byte for byte as before.
* A customer whose stored state the scoring cannot read (a profile in no known format) is
  skipped and reported, the others are scored, and the segment counters still agree with
  the customers (before the fix a pass stopped at it with half its writes made and the
  counters, written last, never updated).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from state.model import MS_PER_DAY
from tests.integration.test_rescore_in_redis import snapshot
from tests.support.generated_state import START, apply, generated_events, runtime

pytestmark = pytest.mark.integration


def _corrupted(packed: bytes) -> bytes:
    """The profile with its order count replaced by text that is no number (its due time
    kept, so the due route still finds it due)."""
    fields = packed.split(b",")
    fields[2] = b"!!"
    return b",".join(fields)


async def _loaded(redis_url: str, prefix: str) -> tuple[Any, aioredis.Redis, list[str]]:
    rt = runtime(redis_url, prefix, "thresholds")
    client = aioredis.Redis.from_url(redis_url)
    touched = await apply(rt, generated_events(seed=7, customers=300, first_offset=0))
    return rt, client, touched


async def test_wrong_type_where_a_pass_writes_fails_the_call_and_writes_nothing(
    redis_url: str,
) -> None:
    rt, client, touched = await _loaded(redis_url, "p1")
    try:
        # Every customer is on outbox 0 (generated_state's partition): make it a string.
        await client.set(rt.keys.outbox(0), "not a stream")
        await rt.rescorer.contexts.current()  # registers the segment codes (its own step)
        before = await snapshot(client, "p1")
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await rt.rescorer.full_pass(START)
        assert await snapshot(client, "p1") == before
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await rt.rescorer.rescore_touched(touched, START)
        assert await snapshot(client, "p1") == before
    finally:
        await client.aclose()
        await rt.close()


async def test_wrong_type_order_records_key_fails_the_batch_and_writes_nothing(
    redis_url: str,
) -> None:
    rt = runtime(redis_url, "p2", "thresholds")
    client = aioredis.Redis.from_url(redis_url)
    try:
        records = generated_events(seed=8, customers=200, first_offset=0)
        victim = records[len(records) // 2].parsed
        await client.set(rt.keys.orders_of(victim.customer_id), "not a hash")  # type: ignore[union-attr]
        await client.set(rt.keys.layout, "2")
        before = await snapshot(client, "p2")
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await rt.store.apply_orders("orders", records)
        assert await snapshot(client, "p2") == before
    finally:
        await client.aclose()
        await rt.close()


@pytest.mark.parametrize("route", ["full", "due", "touched"])
async def test_a_customer_that_cannot_be_scored_is_skipped_and_reported(
    redis_url: str, route: str
) -> None:
    prefix = f"p3{route}"
    rt, client, touched = await _loaded(redis_url, prefix)
    keys = rt.keys
    try:
        await rt.rescorer.full_pass(START)
        states = await rt.reader.customers(touched)
        due_before = {s.customer_id for s in states if s and s.due_ms}
        victim = next(s for s in states[len(states) // 2 :] if s and s.segment and s.due_ms)
        corrupt = _corrupted(
            await client.hget(keys.profiles_of(victim.customer_id), victim.customer_id)
        )
        await client.hset(keys.profiles_of(victim.customer_id), victim.customer_id, corrupt)
        as_of = START + 200 * MS_PER_DAY  # most customers move on
        if route == "full":
            result = await rt.rescorer.full_pass(as_of)
        elif route == "due":
            result = await rt.rescorer.due_pass(as_of)
        else:
            result = await rt.rescorer.rescore_touched(touched, as_of)
        cid = victim.customer_id
        assert result.failed == [cid]
        assert result.changes > 0
        assert await client.hget(keys.profiles_of(cid), cid) == corrupt  # left as it was
        others = [c for c in touched if c != cid]
        states = await rt.reader.customers(others)
        scored = [s for s in states if s is not None and s.orders > 0]
        if route == "due":  # those that were due (every due time lies before as_of)
            scored = [s for s in scored if s.customer_id in due_before]
        assert scored and all(s.as_of_ms == as_of for s in scored)
        # The counters agree with the customers: the others' moves, the victim's old segment.
        counts = await rt.reader.segment_counts()
        held = Counter(s.segment for s in states if s is not None and s.segment)
        held[victim.segment] += 1
        assert counts == dict(held)
        if route == "due":  # its list is dropped like the others: no list grows per pass
            again = await rt.rescorer.due_pass(as_of)
            assert (again.examined, again.failed) == (0, [])
            assert (await rt.rescorer.full_pass(as_of)).failed == [cid]
    finally:
        await client.aclose()
        await rt.close()
