"""The ceiling: the least work one process must do per event, with nothing of faust.

aiokafka ``getmany`` -> ``parse_order`` (orjson + validation) -> ``StateStore.apply_orders``
(the project's own single Lua call per batch) -> consumer commit, in a plain loop under
uvloop when it is installed. No rescoring and no outbox relay: that is what the worker adds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.env import PREFIX
from state.keys import Keys
from state.model import now_ms
from state.money import CurrencyTable
from state.store import InputRecord, StateStore
from stream.validation import ValidationRules, parse_order

T = TypeVar("T")
BATCH = 1000


def run_fast(main: Callable[[], Coroutine[Any, Any, T]]) -> tuple[T, str]:
    """Run a coroutine on uvloop if installed, else asyncio; returns (result, loop name)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main()), "asyncio"
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main()), "uvloop"


def measure(bootstrap: str, redis_url: str, topic: str, total: int) -> dict[str, Any]:
    result, loop = run_fast(lambda: _loop(bootstrap, redis_url, topic, total))
    result["event_loop"] = loop
    return result


async def _loop(bootstrap: str, redis_url: str, topic: str, total: int) -> dict[str, Any]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id="bench-ceiling",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=BATCH,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    client = aioredis.from_url(redis_url)
    store = StateStore(client, Keys(PREFIX))
    rules = ValidationRules(currencies=CurrencyTable("USD"))
    spent = {"fetch": 0.0, "validate": 0.0, "apply": 0.0, "commit": 0.0}
    done = batches = at_first = 0
    first = last = 0.0
    await consumer.start()
    try:
        while done < total:
            mark = time.perf_counter()
            got = await consumer.getmany(timeout_ms=200, max_records=BATCH)
            fetched = time.perf_counter()
            spent["fetch"] += fetched - mark
            if not got:
                continue
            now = now_ms()
            inputs = [
                InputRecord(
                    tp.partition, r.offset, r.key, r.value, parse_order(r.value, rules, now)
                )
                for tp, records in got.items()
                for r in records
            ]
            validated = time.perf_counter()
            await store.apply_orders(topic, inputs, with_states=False)  # as the worker
            applied = time.perf_counter()
            await consumer.commit(
                {TopicPartition(topic, tp.partition): rs[-1].offset + 1 for tp, rs in got.items()}
            )
            committed = time.perf_counter()
            spent["validate"] += validated - fetched
            spent["apply"] += applied - validated
            spent["commit"] += committed - applied
            if not first:
                first, at_first = applied, len(inputs)
            last = committed
            done += len(inputs)
            batches += 1
    finally:
        await consumer.stop()
        await client.aclose()
    seconds = last - first
    counted = done - at_first  # the first batch opens the clock: not part of the rate
    return {
        "events": done,
        "batches": batches,
        "seconds": round(seconds, 3),
        "events_per_s": round(counted / seconds, 1) if seconds > 0 else 0.0,
        "share_of_time": {
            k: round(v / max(sum(spent.values()), 1e-9), 3) for k, v in spent.items()
        },
        "us_per_event": {k: round(v / max(done, 1) * 1e6, 2) for k, v in spent.items()},
    }
