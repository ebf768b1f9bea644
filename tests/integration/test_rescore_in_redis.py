"""Full and due passes rescore customers in Lua (state/lua/rescore_in_redis.lua), change
events included: they must leave Redis exactly as the Python route (state/changes.py +
write_scores.lua) leaves it.

Both routes run on the same generated customers, under two key prefixes of one real Redis:
ids with braces, percent signs, quotes, backslashes and non-ASCII characters, purchases in
the future, cancelled-out customers with no order left, customers changed between passes
(dirty), four as-of times that move customers across recency bounds (one before some
purchases; the last by a due pass in threshold mode), in both scoring modes; then profiles
from before the segment history (eleven fields), an announcement and a last full pass.
Every key either route writes is compared; the change events byte for byte.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis

from state.model import MS_PER_DAY
from tests.support.generated_state import START, apply, generated_events, runtime

pytestmark = pytest.mark.integration


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
    # Whole histories: the Python route knows no window (windows: tests/integration/
    # test_windows.py against the independent oracle).
    python_route = runtime(redis_url, "py", mode, RFM_WINDOW_DAYS="0")
    lua_route = runtime(redis_url, "lua", mode, RFM_WINDOW_DAYS="0")
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

        await before_the_history(client, python_route, lua_route, passes[-1])
    finally:
        await client.aclose()
        await python_route.close()
        await lua_route.close()


async def before_the_history(
    client: aioredis.Redis, python_route: Any, lua_route: Any, last_as_of: int
) -> None:
    # Profiles from before the segment history (eleven fields: no previous segment, no
    # since), one in three, alike under both prefixes; then an announcement of some
    # customers (their since and previous segment, known or not, go into the change
    # record) and a full pass as of an earlier time, which moves some of the old ones.
    ids: list[str] = []
    for prefix in ("py", "lua"):
        async for key in client.scan_iter(match=f"{prefix}:b:{{*", _type="hash"):
            for i, (cid, value) in enumerate(sorted((await client.hgetall(key)).items())):
                fields = value.split(b",")
                assert len(fields) == 13
                if i % 3 == 0:
                    await client.hset(key, cid, b",".join(fields[:10] + fields[12:]))
                if prefix == "py":
                    ids.append(cid.decode())
    assert await snapshot(client, "lua") == await snapshot(client, "py")
    as_of = last_as_of + MS_PER_DAY
    some = sorted(ids)[::4]
    expected = await python_route.rescorer.rescore_ids(some, as_of, "rescore", announce=True)
    got = await lua_route.rescorer.rescore_touched(some, as_of, "rescore", announce=True)
    assert (got.rescored, got.changes) == (expected.rescored, expected.changes)
    assert got.changes == len(some)
    assert await snapshot(client, "lua") == await snapshot(client, "py"), "announced"
    as_of = START + 31 * MS_PER_DAY  # back in time (rescore --as-of): R rises again
    expected = await python_route.rescorer.full_pass(as_of, in_redis=False)
    got = await lua_route.rescorer.full_pass(as_of)
    assert (got.rescored, got.changes) == (expected.rescored, expected.changes)
    assert got.changes > 0
    assert await snapshot(client, "lua") == await snapshot(client, "py"), as_of
    async for key in client.scan_iter(match="lua:b:{*", _type="hash"):  # all rewritten
        assert all(v.count(b",") == 12 for v in (await client.hgetall(key)).values())
