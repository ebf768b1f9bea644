"""Step 5: Redis memory per customer (with its indexes) and per order kept for dedupe.

``used_memory`` (INFO memory) is read before and after loading N customers with one order
each through ``StateStore.apply_orders`` and scoring them with a full pass (which fills the
due lists, the segment counts and each customer's scores). Queued changes are dropped before
reading, as the relay would have published them, and the dirty set is empty after scoring.
Then every customer gets a second order (rescored the same way): that delta / N is the cost
of one more order record kept for duplicate detection. The breakdown sizes every key of
ours with MEMORY USAGE, grouped: profile buckets, order buckets, due lists, shared keys;
what is left of used_memory is Redis' own keyspace tables.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis

from bench.ceiling import run_fast
from bench.env import PREFIX, flush
from bench.rescoring import AS_OF, customer_id, drop_outbox, last_purchase_ms, load, runtime_for
from state.keys import Keys
from state.model import MS_PER_DAY


async def _used(client: aioredis.Redis) -> int:
    await asyncio.sleep(0.2)  # let lazy frees and incremental rehashing settle
    info = await client.info("memory")
    return int(info["used_memory"])


def measure(redis_url: str, customers: int) -> dict[str, Any]:
    flush(redis_url)
    result, _ = run_fast(lambda: _run(redis_url, customers))
    return result


async def _run(redis_url: str, customers: int) -> dict[str, Any]:
    runtime = runtime_for(redis_url)
    client, keys = runtime.redis, Keys(PREFIX)
    try:
        await client.ping()
        base = await _used(client)
        await load(runtime.store, customers)
        await runtime.rescorer.full_pass(AS_OF)
        await drop_outbox(client)
        with_customers = await _used(client)
        parts = await _breakdown(client, keys, customers)
        await load(runtime.store, customers, lambda i: last_purchase_ms(i) - MS_PER_DAY, "p")
        await runtime.rescorer.full_pass(AS_OF)
        await drop_outbox(client)
        with_orders = await _used(client)
        parts_after = await _breakdown(client, keys, customers)
    finally:
        await runtime.close()
    per_customer = (with_customers - base) / customers
    return {
        "customers": customers,
        "used_memory_base": base,
        "used_memory_customers": with_customers,
        "used_memory_orders": with_orders,
        "bytes_per_customer": round(per_customer, 1),
        "bytes_per_order": round((with_orders - with_customers) / customers, 1),
        "breakdown_after_second_order": parts_after,
        "breakdown_per_customer": parts
        | {"keyspace_and_other": round(per_customer - sum(parts.values()), 1)},
        "customer_id_example": customer_id(customers - 1),
    }


async def _breakdown(client: aioredis.Redis, keys: Keys, customers: int) -> dict[str, float]:
    """MEMORY USAGE of every key of ours, grouped by what it holds, per customer."""
    groups = {
        "profile_buckets": keys.profiles_pattern(),
        "order_buckets": f"{keys.prefix}:o:{{*",
        "due_lists": f"{keys.due_head}*",
    }
    out: dict[str, float] = {}
    for name, pattern in groups.items():
        used = 0
        async for key in client.scan_iter(match=pattern, count=1000):
            used += await client.memory_usage(key, samples=0) or 0
        out[name] = round(used / customers, 1)
    shared = 0
    for key in (
        keys.due_hours,
        keys.dirty,
        keys.segments,
        keys.segment_codes,
        keys.offsets,
        keys.stats,
        keys.clock,
    ):
        shared += await client.memory_usage(key, samples=0) or 0
    out["shared_keys"] = round(shared / customers, 1)
    return out
