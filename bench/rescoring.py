"""Step 4: rescoring 1,000,000 customers: a full pass and an incremental (due) pass.

Customers are loaded straight into Redis through the project's own apply step
(``StateStore.apply_orders``, synthetic purchases, batches of 5000, several batches in
flight), not through Kafka. Last purchases are spread over the 121 days in which R can still
drop, and exactly every 100th customer sits on a recency boundary (30, 60, 90 or 120 days
ago as of ``AS_OF``), so one day later exactly 1 % of customers are due.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from bench.ceiling import run_fast
from bench.env import PARTITIONS, PREFIX, flush
from state.keys import Keys
from state.model import MS_PER_DAY, OrderEvent
from state.store import InputRecord, StateStore
from stream.runtime import Runtime
from stream.settings import load_settings

AS_OF = 1_767_225_600_000  # 2026-01-01T00:00:00Z: as-of of the full passes
DUE_AS_OF = AS_OF + MS_PER_DAY  # as-of of the incremental pass
BOUNDARIES = (30, 60, 90, 120)  # the default recency thresholds (RFM_RECENCY_DAYS)
_OTHER_DAYS = [d for d in range(121) if d not in BOUNDARIES]
LOAD_BATCH = 5000
LANES = 4  # batches in flight; each lane has its own topic so its offsets only grow


def last_purchase_ms(i: int) -> int:
    """Customer i's last purchase: on a boundary day for i % 100 == 0, else on another day."""
    if i % 100 == 0:
        days = BOUNDARIES[(i // 100) % len(BOUNDARIES)]
    else:
        days = _OTHER_DAYS[(i * 7) % len(_OTHER_DAYS)]
    return AS_OF - days * MS_PER_DAY - (i * 7919) % MS_PER_DAY


def customer_id(i: int) -> str:
    return f"c{i:07d}"


async def load(
    store: StateStore,
    count: int,
    when: Callable[[int], int] = last_purchase_ms,
    order_prefix: str = "o",
) -> float:
    """One purchase for each of customers 0..count-1; returns customers per second."""
    started = time.perf_counter()

    async def lane(n: int) -> None:
        topic = f"bench.load.{order_prefix}.{n}"
        offsets = [0] * PARTITIONS  # contiguous per partition, as Kafka would number them
        for lo in range(n * LOAD_BATCH, count, LANES * LOAD_BATCH):
            batch = []
            for i in range(lo, min(lo + LOAD_BATCH, count)):
                p, cid = i % PARTITIONS, customer_id(i)
                amount = 500 + (i * 7919) % 60_000
                event = OrderEvent("purchase", f"{order_prefix}{i:08d}", cid, amount, when(i))
                batch.append(InputRecord(p, offsets[p], cid.encode(), b"", event))
                offsets[p] += 1
            result = await store.apply_orders(topic, batch, with_states=False)
            if result.outcomes.count("applied") != len(batch):
                raise RuntimeError(f"load batch at {lo}: not all applied: {set(result.outcomes)}")

    await asyncio.gather(*(lane(n) for n in range(LANES)))
    return count / (time.perf_counter() - started)


def runtime_for(redis_url: str) -> Runtime:
    """The worker's own wiring (thresholds scoring, default segments, wall clock)."""
    env = {"RFM_REDIS_URL": redis_url, "RFM_KAFKA_BOOTSTRAP": "127.0.0.1:1"}
    return Runtime.build(load_settings(env=env))


async def drop_outbox(client: aioredis.Redis) -> int:
    """Forget queued changes, as a relay would after publishing them."""
    found = [k async for k in client.scan_iter(match=f"{PREFIX}:outbox:*")]
    return int(await client.delete(*found)) if found else 0


def measure(redis_url: str, customers: int) -> dict[str, Any]:
    flush(redis_url)
    result, loop = run_fast(lambda: _run(redis_url, customers))
    result["event_loop"] = loop
    return result


async def _run(redis_url: str, customers: int) -> dict[str, Any]:
    runtime = runtime_for(redis_url)
    try:
        rate = await load(runtime.store, customers)
        cold = await runtime.rescorer.full_pass(AS_OF)
        await drop_outbox(runtime.redis)
        full = await runtime.rescorer.full_pass(AS_OF)
        due_size = await runtime.redis.zcard(Keys(PREFIX).due_hours)
        due = await runtime.rescorer.due_pass(DUE_AS_OF)
    finally:
        await runtime.close()
    return {
        "customers": customers,
        "load_customers_per_s": round(rate, 1),
        "due_hours_listed": due_size,
        "full_pass_first": _pass(cold),
        "full_pass": _pass(full),
        "due_pass": _pass(due),
        "due_share_of_customers": round(due.rescored / customers, 4),
        "due_over_full": round(due.seconds / full.seconds, 4) if full.seconds else 0.0,
    }


def _pass(result: Any) -> dict[str, Any]:
    return {
        "seconds": round(result.seconds, 3),
        "examined": result.examined,
        "rescored": result.rescored,
        "changes": result.changes,
        "customers_per_s": round(result.rescored / result.seconds, 1) if result.seconds else 0.0,
    }
