"""Full and due passes rescore customers in Lua (state/lua/rescore_in_redis.lua), change
events included: they must leave Redis exactly as the Python route (state/changes.py +
write_scores.lua) leaves it.

Both routes run on the same generated customers, under two key prefixes of one real Redis:
ids with braces, percent signs, quotes, backslashes and non-ASCII characters, purchases in
the future, cancelled-out customers with no order left, customers changed between passes
(dirty), four as-of times that move customers across recency bounds (one before some
purchases; the last by a due pass in threshold mode), in both scoring modes. Every key
either route writes is compared; the change events byte for byte.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
import redis.asyncio as aioredis

from state.model import MS_PER_DAY, OrderEvent
from state.store import InputRecord
from stream.runtime import Runtime
from stream.settings import load_settings

pytestmark = pytest.mark.integration

START = 1_767_225_600_000  # 2026-01-01
TOPIC = "orders"


def runtime(redis_url: str, prefix: str, mode: str) -> Runtime:
    env = {
        "RFM_REDIS_URL": redis_url,
        "RFM_KAFKA_BOOTSTRAP": "127.0.0.1:1",  # never contacted: nothing is published
        "RFM_REDIS_PREFIX": prefix,
        "RFM_SCORING": mode,
    }
    return Runtime.build(load_settings(env=env))


def generated_events(seed: int, customers: int, first_offset: int) -> list[InputRecord]:
    rng = random.Random(seed)
    records: list[InputRecord] = []
    for i in range(customers):
        cid = rng.choice(
            [f"c{i}", f"c%{i}", f"c{{{i}}}", f"c}}%7B{i}", f'c"{i}\\', f"Zoë/{i}\u2028\x7f"]
        )
        for n in range(rng.choice([1, 1, 1, 2, 3, 5, 8, 12])):
            order = f"{cid}-{seed}-{n}"
            when = START - rng.randrange(-5, 400) * MS_PER_DAY - rng.randrange(MS_PER_DAY)
            amount = rng.choice([100, 5_000, 9_999, 10_000, 39_999, 40_000, 70_000, 250_000])
            records.append(
                _record(len(records) + first_offset, "purchase", order, cid, amount, when)
            )
            if rng.random() < 0.15:
                kind = rng.choice(["cancel", "refund"])
                amount = 0 if kind == "cancel" else amount // 2
                rec = _record(len(records) + first_offset, kind, order, cid, amount, when + 1)
                records.append(rec)
    return records


def _record(offset: int, kind: Any, order: str, cid: str, amount: int, when: int) -> InputRecord:
    refund = f"r-{order}" if kind == "refund" else None
    event = OrderEvent(kind, order, cid, amount, when, refund)
    return InputRecord(0, offset, cid.encode(), b"{}", event)


async def apply(rt: Runtime, records: list[InputRecord]) -> list[str]:
    touched: dict[str, None] = {}
    for i in range(0, len(records), 500):
        applied = await rt.store.apply_orders(TOPIC, records[i : i + 500])
        touched.update(dict.fromkeys(applied.touched))
    return list(touched)


async def snapshot(client: aioredis.Redis, prefix: str) -> dict[str, Any]:
    """Everything under the prefix, with the prefix cut off. Outbox entries and due lists
    are compared as sets: each route meets the customers in its own order."""
    out: dict[str, Any] = {}
    async for key in client.scan_iter(match=f"{prefix}:*"):
        name = key.decode()[len(prefix) :]
        kind = (await client.type(key)).decode()
        if kind == "hash":
            out[name] = await client.hgetall(key)
        elif kind == "zset":
            out[name] = await client.zrange(key, 0, -1, withscores=True)
        elif kind == "set":
            out[name] = sorted(await client.smembers(key))
        elif kind == "stream":
            out[name] = sorted(sorted(fields.items()) for _, fields in await client.xrange(key))
        elif kind == "list":  # due lists: each route appends in its own order
            out[name] = sorted(await client.lrange(key, 0, -1))
        else:
            out[name] = await client.get(key)
    return out


@pytest.mark.parametrize("mode", ["thresholds", "quintiles"])
async def test_redis_route_leaves_redis_as_the_python_route_does(redis_url: str, mode: str) -> None:
    python_route, lua_route = runtime(redis_url, "py", mode), runtime(redis_url, "lua", mode)
    client = aioredis.Redis.from_url(redis_url)
    try:
        history = generated_events(seed=1, customers=600, first_offset=0)
        for rt in (python_route, lua_route):
            await apply(rt, history)
        quiet_seen = changes_seen = 0
        # The second as-of lies before some purchases (recency clamps to 0 days).
        passes = [START, START - 2 * MS_PER_DAY, START + 31 * MS_PER_DAY, START + 200 * MS_PER_DAY]
        for step, as_of in enumerate(passes):
            if step == 1:  # orders arrive; the touched customers are scored as after orders
                extra = generated_events(seed=3, customers=120, first_offset=len(history))
                touched = await apply(python_route, extra)
                assert await apply(lua_route, extra) == touched
                expected = await python_route.rescorer.rescore_ids(touched, as_of, "order")
                got = await lua_route.rescorer.rescore_touched(touched, as_of, "order")
                assert (got.rescored, got.changes) == (expected.rescored, expected.changes)
                assert got.changes > 0
                assert got.transitions == expected.transitions
                assert await snapshot(client, "lua") == await snapshot(client, "py"), as_of
                history += extra
            if step == 2:  # some customers change between passes and are left unscored
                more = generated_events(seed=2, customers=150, first_offset=len(history))
                for rt in (python_route, lua_route):
                    await apply(rt, more)
            if step == 3 and mode == "thresholds":  # the due pass takes the same route
                expected = await python_route.rescorer.due_pass(as_of, in_redis=False)
                got = await lua_route.rescorer.due_pass(as_of)
            else:
                expected = await python_route.rescorer.full_pass(as_of, in_redis=False)
                got = await lua_route.rescorer.full_pass(as_of)
            assert (got.examined, got.rescored, got.changes) == (
                expected.examined,
                expected.rescored,
                expected.changes,
            )
            assert got.transitions == expected.transitions
            quiet_seen += got.rescored - got.changes
            changes_seen += got.changes
            assert await snapshot(client, "lua") == await snapshot(client, "py"), as_of
        assert quiet_seen > 0 and changes_seen > 0  # both kinds went through the Lua route
    finally:
        await client.aclose()
        await python_route.close()
        await lua_route.close()
