"""Step 4: rescoring 1,000,000 customers: full passes and incremental (due) passes.

Customers are loaded straight into Redis through the project's own apply step
(``StateStore.apply_orders``, synthetic purchases, batches of 5000, several batches in
flight), not through Kafka. Last purchases are spread over the 121 days in which R can still
drop. On each of the ``DUE_DAYS`` days after ``AS_OF`` exactly 1 % of customers cross a
recency boundary (30, 60, 90 or 120 days): customer i with i % 100 == k lies k days short of
one. After the first full pass (everyone changes segment) the steady full pass is timed
``REPEATS`` times and one due pass a day ``DUE_DAYS`` times; the ratio is median over median.
Why repeats: on this shared 2-core machine two full passes in a row differed by up to 45 %,
and a due pass lasts a fifth of a second, so one pair of numbers said more about the minute
than about the code.
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
from state.rescorer import PassResult
from state.store import InputRecord, StateStore
from stream.runtime import Runtime
from stream.settings import load_settings

AS_OF = 1_767_225_600_000  # 2026-01-01T00:00:00Z: as-of of the full passes
DUE_AS_OF = AS_OF + MS_PER_DAY  # as-of of the first incremental pass
BOUNDARIES = (30, 60, 90, 120)  # the default recency thresholds (RFM_RECENCY_DAYS)
DUE_DAYS = 3  # due passes, one a day; 1 % of customers due on each
REPEATS = 3  # steady full passes
_OTHER_DAYS = [d for d in range(121) if all(not b - DUE_DAYS < d <= b for b in BOUNDARIES)]
LOAD_BATCH = 5000
LANES = 4  # batches in flight; each lane has its own topic so its offsets only grow


def last_purchase_ms(i: int) -> int:
    """Customer i's last purchase: k = i % 100 days short of a boundary for k < DUE_DAYS (so
    due on day k + 1), else on a day from which no boundary is reached within DUE_DAYS."""
    k = i % 100
    if k < DUE_DAYS:
        days = BOUNDARIES[(i // 100) % len(BOUNDARIES)] - k
    else:
        days = _OTHER_DAYS[(i * 7) % len(_OTHER_DAYS)]
    return AS_OF - days * MS_PER_DAY - (i * 7919) % MS_PER_DAY


ORDERS_PER_CUSTOMER = 5  # the last purchase and four before it, 20 days apart


def _earlier(k: int) -> Callable[[int], int]:
    """Customer i's k-th purchase before its last: 20 k days earlier, so all five stay in a
    365-day window through the due passes (R decides who is due, as designed above)."""
    return lambda i: last_purchase_ms(i) - 20 * k * MS_PER_DAY


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


def runtime_for(redis_url: str, scoring: str = "thresholds") -> Runtime:
    """The worker's own wiring (default segments and window). The event clock, because the
    customers' purchases lie before AS_OF, a fixed date: by the wall clock they would age
    past the order retention and be dead-lettered too_old."""
    env = {
        "RFM_REDIS_URL": redis_url,
        "RFM_KAFKA_BOOTSTRAP": "127.0.0.1:1",
        "RFM_SCORING": scoring,
        "RFM_CLOCK": "event",
    }
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
        for k in range(1, ORDERS_PER_CUSTOMER):  # earlier orders: ~5 a customer (#17's row)
            await load(runtime.store, customers, _earlier(k), order_prefix=f"e{k}-")
        cold = await runtime.rescorer.full_pass(AS_OF)
        await drop_outbox(runtime.redis)
        fulls = [await runtime.rescorer.full_pass(AS_OF) for _ in range(REPEATS)]
        due_size = await runtime.redis.zcard(Keys(PREFIX).due_hours)
        dues = []
        for day in range(DUE_DAYS):
            dues.append(await runtime.rescorer.due_pass(DUE_AS_OF + day * MS_PER_DAY))
            await drop_outbox(runtime.redis)
        quintiles = await _quintile_passes(redis_url)
    finally:
        await runtime.close()
    full, due = _median(fulls), _median(dues)
    return {
        "customers": customers,
        "orders_per_customer": ORDERS_PER_CUSTOMER,
        "load_customers_per_s": round(rate, 1),
        "due_hours_listed": due_size,
        "full_pass_first": _pass(cold),
        "full_pass": _pass(full),
        "full_passes_s": [round(r.seconds, 3) for r in fulls],
        "due_pass": _pass(due),
        "due_passes": [_pass(r) for r in dues],
        "due_share_of_customers": round(due.rescored / customers, 4),
        "due_over_full": round(due.seconds / full.seconds, 4) if full.seconds else 0.0,
        "full_pass_quintiles": _pass(quintiles),
    }


async def _quintile_passes(redis_url: str) -> PassResult:
    """The same customers in quintile mode, whose full pass first cuts the population into
    fifths (state/population.py): the first pass moves customers to their ranks, the second
    (same as-of, steady) is the one reported."""
    runtime = runtime_for(redis_url, scoring="quintiles")
    as_of = DUE_AS_OF + DUE_DAYS * MS_PER_DAY
    try:
        await runtime.rescorer.full_pass(as_of)
        await drop_outbox(runtime.redis)
        steady = await runtime.rescorer.full_pass(as_of)
        await drop_outbox(runtime.redis)
        return steady
    finally:
        await runtime.close()


def _median(results: list[PassResult]) -> PassResult:
    """The run of median time (of an odd number of runs)."""
    return sorted(results, key=lambda r: r.seconds)[len(results) // 2]


def _pass(result: PassResult) -> dict[str, Any]:
    return {
        "seconds": round(result.seconds, 3),
        "examined": result.examined,
        "rescored": result.rescored,
        "changes": result.changes,
        "customers_per_s": round(result.rescored / result.seconds, 1) if result.seconds else 0.0,
    }
