"""The bare ceiling: what a minimal exactly-once consumer of the same topic costs.

aiokafka ``getmany`` (up to 1000) -> ``orjson.loads`` of each value (a value that is not a
JSON object with string ``customer_id`` and ``order_id`` is skipped; nothing else is
checked) -> ONE call of the tiny script below per batch -> consumer commit, in a plain loop
under uvloop when it is installed, as ``bench/ceiling.py``.

The script does, per event, the least an exactly-once RFM state needs: a dedupe field
(``HSETNX`` of ``<customer>\\x1f<order>`` in the customer's bucket hash, buckets as the
product's: CRC-32 of the id & 65535, keys with a hash tag) and, for an order not seen
before, one hash per customer (``HINCRBY`` of ``orders`` and of ``spend`` in cents); and per
batch the input offsets in one hash. Arguments are flat: four per event, no JSON.

What it leaves out, so what the product's own ceiling (``bench/ceiling.py``) and the worker
pay on top: validation (types, amounts, currencies, timestamps), event time and recency,
refunds and cancels (every event is an order here), dead letters, the gap check against
the stored offsets, counters, the event clock, dirty sets, scoring, windows, the outbox
and the relay. Self-contained: nothing of ``state/`` is used, so it keeps measuring the
same thing when the product's state layer changes.
"""

from __future__ import annotations

import os
import time
import zlib
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.ceiling import BATCH, run_fast
from bench.env import cpu_seconds

BUCKETS = 65_536  # as the product (state/keys.py), but not imported: this must stay put
PREFIX = "bare"  # keys of their own, on a Redis flushed before the run
PER_EVENT = 4  # bucket, customer id, order id, amount

# KEYS[1]: offsets hash. ARGV[1]: key prefix; ARGV[2]: number of partitions n;
# ARGV[3 .. 2 + 2n]: <topic>:<partition>, last offset of the batch in it;
# then per event: bucket, customer id, order id, amount (as sent; not a number counts 0).
# Returns {orders applied, duplicates}.
SCRIPT = """
local n = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], unpack(ARGV, 3, 2 + 2 * n))
local orders_head, customer_head = ARGV[1] .. ':o:{', ARGV[1] .. ':c:{'
local applied, duplicate = 0, 0
for i = 3 + 2 * n, #ARGV, 4 do
  local bucket, customer = ARGV[i], ARGV[i + 1]
  if redis.call('HSETNX', orders_head .. bucket .. '}', customer .. '\\31' .. ARGV[i + 2], '1')
      == 1 then
    local cents = tonumber(ARGV[i + 3])
    if cents == nil or cents ~= cents or cents > 1e11 or cents < -1e11 then
      cents = 0
    else
      cents = math.floor(cents * 100 + 0.5)
    end
    local key = customer_head .. bucket .. '}:' .. customer
    redis.call('HINCRBY', key, 'orders', 1)
    redis.call('HINCRBY', key, 'spend', cents)
    applied = applied + 1
  else
    duplicate = duplicate + 1
  end
end
return {applied, duplicate}
"""


def measure(
    bootstrap: str, redis_url: str, topic: str, total: int, redis_pid: int | None = None
) -> dict[str, Any]:
    """``redis_pid``: the redis-server whose CPU is reported per 1000 events."""
    result, loop = run_fast(lambda: _loop(bootstrap, redis_url, topic, total, redis_pid))
    result["event_loop"] = loop
    return result


def decode(value: bytes | None) -> tuple[int, str, str, Any] | None:
    """(bucket, customer id, order id, amount) of a record, or None to skip it."""
    try:
        event = orjson.loads(value)  # type: ignore[arg-type]  # None: a tombstone, skipped
    except (orjson.JSONDecodeError, TypeError):
        return None
    if type(event) is not dict:
        return None
    customer, order = event.get("customer_id"), event.get("order_id")
    if type(customer) is not str or type(order) is not str:
        return None
    amount = event.get("amount")
    if type(amount) not in (str, int, float):
        amount = 0
    return zlib.crc32(customer.encode()) & (BUCKETS - 1), customer, order, amount


def _cpu(redis_pid: int | None) -> dict[str, float]:
    found = {"bench": cpu_seconds(os.getpid())}
    if redis_pid is not None:
        found["redis"] = cpu_seconds(redis_pid)
    return found


async def _loop(
    bootstrap: str, redis_url: str, topic: str, total: int, redis_pid: int | None
) -> dict[str, Any]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id="bench-bare-ceiling",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=BATCH,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    client = aioredis.from_url(redis_url)
    apply = client.register_script(SCRIPT)
    offsets_key = f"{PREFIX}:offsets"
    spent = {"fetch": 0.0, "decode": 0.0, "apply": 0.0, "commit": 0.0}
    done = batches = at_first = applied = duplicates = skipped = 0
    first = last = 0.0
    cpu_at_first: dict[str, float] = {}
    await consumer.start()
    try:
        while done < total:
            mark = time.perf_counter()
            got = await consumer.getmany(timeout_ms=200, max_records=BATCH)
            fetched = time.perf_counter()
            spent["fetch"] += fetched - mark
            if not got:
                continue
            args: list[Any] = [PREFIX, len(got)]
            for tp, records in got.items():
                args += (f"{topic}:{tp.partition}", records[-1].offset)
            count = 0
            for records in got.values():
                count += len(records)
                for r in records:
                    event = decode(r.value)
                    if event is None:
                        skipped += 1
                    else:
                        args += event
            decoded = time.perf_counter()
            new, seen = await apply(keys=[offsets_key], args=args)
            applied, duplicates = applied + new, duplicates + seen
            done_applying = time.perf_counter()
            await consumer.commit(
                {TopicPartition(topic, tp.partition): rs[-1].offset + 1 for tp, rs in got.items()}
            )
            committed = time.perf_counter()
            spent["decode"] += decoded - fetched
            spent["apply"] += done_applying - decoded
            spent["commit"] += committed - done_applying
            done += count
            batches += 1
            last = committed
            if not first:  # the clock (and the CPU count) starts at the end of the first batch
                first, at_first, cpu_at_first = committed, count, _cpu(redis_pid)
    finally:
        await consumer.stop()
        await client.aclose()
    cpu = {k: v - cpu_at_first.get(k, 0.0) for k, v in _cpu(redis_pid).items()}
    seconds = last - first
    counted = done - at_first  # the first batch opens the clock: not part of the rate
    return {
        "events": done,
        "batches": batches,
        "orders_applied": applied,
        "duplicates": duplicates,
        "skipped": skipped,
        "seconds": round(seconds, 3),
        "events_per_s": round(counted / seconds, 1) if seconds > 0 else 0.0,
        "share_of_time": {
            k: round(v / max(sum(spent.values()), 1e-9), 3) for k, v in spent.items()
        },
        "us_per_event": {k: round(v / max(done, 1) * 1e6, 2) for k, v in spent.items()},
        "cpu_s_per_1000_events": {k: round(v / max(counted, 1) * 1000, 4) for k, v in cpu.items()},
        "cpu_cores_busy": {k: round(v / max(seconds, 1e-9), 2) for k, v in cpu.items()},
    }
