"""A full pass keeps one script call in flight while it reads the last reply: a failure
must still surface as the pass's error, with no call left running behind it."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from bench.rescoring import AS_OF, load, runtime_for
from state.store import InRedis

pytestmark = pytest.mark.integration


async def test_a_failed_chunk_fails_the_pass_and_leaves_no_call_running(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = runtime_for(redis_url)
    try:
        await load(runtime.store, 2_000)  # ~2,000 buckets: about 31 calls of 64
        real, calls = runtime.store.rescore_buckets, Counter[str]()

        async def third_fails(*args: Any) -> InRedis:
            calls["started"] += 1
            number = calls["started"]
            try:
                await asyncio.sleep(0.05)  # still running when the next call is sent
                if number == 3:
                    raise ConnectionError("Redis went away")
                if number == 4:
                    # In flight when the third fails: only the pass's cancellation ends it
                    # early. (Not a real call: redis-py drops a cancellation that lands while
                    # it sends a command, state/cancellation.py, so a fourth call already
                    # sending, as on a fast machine, ended uncancelled.)
                    await asyncio.sleep(30)
                return await real(*args)
            except asyncio.CancelledError:
                calls["cancelled"] += 1
                raise
            finally:
                calls["ended"] += 1

        monkeypatch.setattr(runtime.store, "rescore_buckets", third_fails)
        with pytest.raises(ConnectionError, match="Redis went away"):
            await runtime.rescorer.full_pass(AS_OF)
        assert calls["started"] == 4  # the fourth was in flight when the third failed
        assert calls["ended"] == calls["started"]
        assert calls["cancelled"] == 1

        monkeypatch.undo()
        done = await runtime.rescorer.full_pass(AS_OF)
        assert done.examined == 2_000
    finally:
        await runtime.close()


async def test_a_large_store_lists_its_buckets_by_number_and_misses_none(redis_url: str) -> None:
    runtime = runtime_for(redis_url)
    try:
        await load(runtime.store, 2_000)
        ids = [f"c{i:07d}" for i in range(2_000)]
        before = {s.customer_id: s.version for s in await runtime.reader.customers(ids) if s}
        runtime.rescorer.enumerate_from_keys = 0  # as a store with more keys than buckets
        done = await runtime.rescorer.full_pass(AS_OF)
        assert done.examined == 2_000
        after = await runtime.reader.customers(ids)
        assert all(s is not None and s.version == before[s.customer_id] + 1 for s in after)
        assert {s.as_of_ms for s in after if s is not None} == {AS_OF}
    finally:
        await runtime.close()
