"""``python -m bench.api_lookups [--small]``: one-customer lookups through the query API.

Issue #20's row: with 1,000,000 customers in Redis, ``GET /v1/customers/{id}`` at 1,000
requests/s; target p99 <= 5 ms. ``rfm-stream serve`` runs as its own process, as deployed;
the load is open-loop (each request is sent at its scheduled time, and its latency counts
from then), so a stall shows in the percentiles instead of slowing the load down
(coordinated omission). Customers are loaded and scored with the worker's own store and a
full pass (bench/rescoring.py). The result goes to stdout and ``bench/results/api.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.rescoring import AS_OF, customer_id, load, runtime_for
from rfm_dev.embedded import free_port, port_is_open, start_redis

TARGET_P99_MS = 5.0
TOKEN = "bench-" + "t" * 26
ROOT = Path(__file__).resolve().parents[1]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _prepare(redis_url: str, customers: int) -> dict[str, float]:
    runtime = runtime_for(redis_url)
    try:
        rate = await load(runtime.store, customers)
        started = time.perf_counter()
        await runtime.rescorer.full_pass(AS_OF)
        return {
            "load_customers_per_s": round(rate, 1),
            "full_pass_s": time.perf_counter() - started,
        }
    finally:
        await runtime.close()


async def _fire(port: int, customers: int, rate: float, seconds: float) -> dict[str, Any]:
    rng = random.Random(20)
    url = f"http://127.0.0.1:{port}/v1/customers/"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    total = int(rate * seconds)
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(at: float, cid: str) -> None:
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            async with session.get(url + cid, headers=headers) as response:
                await response.read()
                statuses[response.status] = statuses.get(response.status, 0) + 1
            latencies.append((time.perf_counter() - at) * 1000)

        for warm in range(200):  # connections and the server's first requests
            await one(time.perf_counter(), customer_id(warm))
        latencies.clear()
        statuses.clear()
        # Each request is started at its time by one pacing loop (not all created up front:
        # 30,000 waiting tasks cost the client's loop more than the server's answers), with
        # the client's garbage collector off so that its pauses are not measured as the API's.
        start = time.perf_counter() + 0.1
        began = time.perf_counter()
        running: set[asyncio.Task[None]] = set()
        gc.disable()
        try:
            for i in range(total):
                at = start + i / rate
                delay = at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(one(at, customer_id(rng.randrange(customers))))
                running.add(task)
                task.add_done_callback(running.discard)
            await asyncio.gather(*running)
        finally:
            gc.enable()
        elapsed = time.perf_counter() - began
    return {
        "requests": total,
        "rate_asked": rate,
        "rate_achieved": round(total / elapsed, 1),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "p50_ms": round(_percentile(latencies, 0.50), 2),
        "p99_ms": round(_percentile(latencies, 0.99), 2),
        "p999_ms": round(_percentile(latencies, 0.999), 2),
        "max_ms": round(max(latencies), 2),
    }


def measure(customers: int, rate: float, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        redis = start_redis(Path(tmp))
        server: subprocess.Popen[bytes] | None = None
        try:
            prepared = asyncio.run(_prepare(redis.url, customers))
            port = free_port()
            env = {
                **os.environ,
                "RFM_REDIS_URL": redis.url,
                "RFM_KAFKA_BOOTSTRAP": "127.0.0.1:1",  # the API never talks to Kafka
                "RFM_CLOCK": "event",
                "RFM_API_PORT": str(port),
                "RFM_API_TOKENS": TOKEN,
                "RFM_LOG_LEVEL": "warning",
            }
            server = subprocess.Popen(
                [sys.executable, "-m", "stream.cli.main", "serve"], env=env, cwd=ROOT
            )
            deadline = time.monotonic() + 30
            while not port_is_open(port) and time.monotonic() < deadline:
                time.sleep(0.1)
            fired = asyncio.run(_fire(port, customers, rate, seconds))
        finally:
            if server is not None:
                server.terminate()
                server.wait(10)
            redis.stop()
    ok = fired["p99_ms"] <= TARGET_P99_MS and fired["statuses"] == {"200": fired["requests"]}
    return {
        "customers": customers,
        **prepared,
        **fired,
        "target": f"p99 <= {TARGET_P99_MS} ms at {rate:,.0f}/s",
        "result": "PASS" if ok else "FAIL",
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.api_lookups", description=__doc__)
    p.add_argument("--small", action="store_true", help="20,000 customers, 5 s")
    p.add_argument("--customers", type=int)
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument("--seconds", type=float)
    p.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "api.json")
    args = p.parse_args(argv)
    customers = args.customers or (20_000 if args.small else 1_000_000)
    seconds = args.seconds or (5.0 if args.small else 30.0)
    result = measure(customers, args.rate, seconds)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"api lookups: {result['customers']:,} customers, {result['rate_achieved']:,}/s "
        f"(asked {args.rate:,.0f}/s): p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
        f"p99.9 {result['p999_ms']} ms, max {result['max_ms']} ms, statuses "
        f"{result['statuses']}; target {result['target']}: {result['result']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
