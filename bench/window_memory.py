"""``python -m bench.window_memory [--small]``: Redis memory over three simulated years.

Issue #17's row: with a 365-day window and the default retention (395 days), orders at a
constant rate for three years must leave Redis memory flat once the retention horizon is
reached, because the rescoring passes delete the order records past it. Orders are applied
day by day in time order through the worker's own store (one partition, RFM_CLOCK=event,
so the watermark advances with them), their customers rescored as the worker does, and a
due pass runs at the end of every simulated week. Every 30 days: Redis ``used_memory`` and
the order records held. Target: growth over the third year under 10 % of the memory at
its start. The curve goes to stdout and ``bench/results/window_memory.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

from redis.asyncio import Redis

from bench.rescoring import runtime_for
from rfm_dev.embedded import start_redis
from state.model import MS_PER_DAY, OrderEvent
from state.store import InputRecord

DAYS = 3 * 365
START = 1_704_067_200_000  # 2024-01-01: a fixed calendar, the event clock follows it
ORDERS_PER_CUSTOMER_A_YEAR = 5
SAMPLE_EVERY_DAYS = 30
TARGET_THIRD_YEAR_GROWTH = 0.10
ROOT = Path(__file__).resolve().parents[1]


async def _order_records(client: Redis) -> int:
    """Order records held (``<id>\\x1f<order>`` fields), refund marks and windows apart."""
    total = 0
    async for key in client.scan_iter(match="rfm:o:{*", count=2000):
        fields = cast(list[bytes], await client.hkeys(key))
        total += sum(1 for f in fields if f.count(b"\x1f") == 1)
    return total


async def _used(client: Redis) -> int:
    info = await client.info("memory")
    return int(info["used_memory"])


async def _simulate(redis_url: str, customers: int) -> dict[str, Any]:
    runtime = runtime_for(redis_url)
    rng = random.Random(1717)
    per_day = customers * ORDERS_PER_CUSTOMER_A_YEAR / 365
    offset, curve = 0, []
    started = time.perf_counter()
    try:
        client = runtime.redis
        baseline = await _used(client)
        for day in range(DAYS):
            count = int(per_day) + (1 if rng.random() < per_day % 1 else 0)
            records = []
            for _ in range(count):
                cid = f"c{rng.randrange(customers):07d}"
                at = START + day * MS_PER_DAY + rng.randrange(MS_PER_DAY)
                event = OrderEvent("purchase", f"o{offset:09d}", cid, 500 + offset % 90_000, at)
                records.append(InputRecord(0, offset, cid.encode(), b"", event))
                offset += 1
            records.sort(key=lambda rec: rec.offset)
            for lo in range(0, len(records), 2000):
                applied = await runtime.store.apply_orders("sim.orders", records[lo : lo + 2000])
                await runtime.rescorer.rescore_touched(applied.touched, applied.clock_ms)
            if day % 7 == 6:
                await runtime.rescorer.due_pass(START + (day + 1) * MS_PER_DAY)
                await client.delete(*[k async for k in client.scan_iter(match="rfm:outbox:*")])
            if day % SAMPLE_EVERY_DAYS == SAMPLE_EVERY_DAYS - 1 or day == DAYS - 1:
                curve.append(
                    {
                        "day": day + 1,
                        "used_memory_mb": round((await _used(client)) / 2**20, 2),
                        "order_records": await _order_records(client),
                        "orders_applied": offset,
                    }
                )
                print(
                    f"  day {day + 1:4d}: {curve[-1]['used_memory_mb']:8.2f} MB, "
                    f"{curve[-1]['order_records']:,} order records of {offset:,} applied",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        await runtime.close()
    third_year = [p for p in curve if p["day"] > 2 * 365]
    start_mb, end_mb = third_year[0]["used_memory_mb"], third_year[-1]["used_memory_mb"]
    growth = (end_mb - start_mb) / start_mb if start_mb else 0.0
    return {
        "customers": customers,
        "days": DAYS,
        "orders_applied": offset,
        "baseline_mb": round(baseline / 2**20, 2),
        "seconds": round(time.perf_counter() - started, 1),
        "curve": curve,
        "third_year_growth": round(growth, 4),
        "target": f"third-year growth < {TARGET_THIRD_YEAR_GROWTH:.0%}",
        "result": "PASS" if growth < TARGET_THIRD_YEAR_GROWTH else "FAIL",
    }


def measure(customers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-window-") as tmp:
        redis = start_redis(Path(tmp))
        try:
            return asyncio.run(_simulate(redis.url, customers))
        finally:
            redis.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.window_memory", description=__doc__)
    p.add_argument("--small", action="store_true", help="2,000 customers")
    p.add_argument("--customers", type=int)
    p.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "window_memory.json")
    args = p.parse_args(argv)
    result = measure(args.customers or (2_000 if args.small else 20_000))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"window memory: {result['customers']:,} customers, {DAYS} days, "
        f"{result['orders_applied']:,} orders; used_memory by month (MB):"
    )
    for point in result["curve"]:
        bar = "#" * int(
            point["used_memory_mb"] * 40 / max(p["used_memory_mb"] for p in result["curve"])
        )
        print(
            f"  day {point['day']:4d} {point['used_memory_mb']:8.2f}  "
            f"{point['order_records']:>9,} records  {bar}"
        )
    print(
        f"third-year growth {result['third_year_growth']:.1%}; target {result['target']}: "
        f"{result['result']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
