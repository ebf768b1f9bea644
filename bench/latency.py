"""Step 3: latency from an order's publish to its segment-change event's publish.

One worker runs; records are published at a fixed rate (``bench/paced.py``): the
throughput workload's events, every tenth record a probe, a purchase of a brand-new
customer, whose change (previous_segment null -> "new") is timed. "Half the maximum rate"
is half of what the worker did on that workload, so the latency is measured on it too: a
run of probes only (every order a change event, a relay publish and a broker write) is about
twice the worker's CPU per order, and at the same rate it loads the worker as the
throughput part did at its maximum (seen: 45 against 21 us an order). That run is reported
beside it (``every_order_a_change``), without a target.

The publish time of an order is the timestamp we give it (we also record it); the change's
publish time is its broker timestamp (CreateTime, stamped by the worker's relay producer
when it sends). Same host, same clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.env import PREFIX, Stack, create_topic, flush, stack_cpu
from bench.paced import PROBE_EVERY, plan, publish_at, purchase
from bench.worker import log_tail, start_worker, stop_worker, worker_env
from state.keys import Keys
from state.reads import StateReader

GROUP = "bench-latency"
TOPIC = f"{GROUP}.orders"
CHANGES = f"{GROUP}.changes"


def measure(
    stack: Stack,
    rate: float,
    seconds: float,
    workdir: Path,
    workload: Sequence[tuple[bytes, bytes]] | None,
) -> dict[str, Any]:
    """``workload``: the events published between probes; None for probes only."""
    flush(stack.redis_url)
    asyncio.run(create_topic(stack.bootstrap, TOPIC))
    asyncio.run(create_topic(stack.bootstrap, CHANGES))
    logs = workdir / GROUP
    proc = start_worker(worker_env(stack, TOPIC, GROUP, workdir / GROUP), logs)
    try:
        result = asyncio.run(
            _run(stack.bootstrap, rate, seconds, workload, lambda: stack_cpu(stack, [proc.pid]))
        )
        result |= _split(stack.redis_url, result.pop("sent"), result.pop("seen"))
        return result
    except TimeoutError as exc:
        raise RuntimeError(f"{exc}; worker log:\n{log_tail(logs)}") from exc
    finally:
        stop_worker(proc)


class _Changes:
    """Reads the changes topic in the background: customer id -> broker timestamp."""

    def __init__(self, bootstrap: str) -> None:
        self.seen: dict[str, int] = {}
        self.consumer = AIOKafkaConsumer(
            CHANGES,
            bootstrap_servers=bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            # Few, large fetches: it runs during the warm-up and after the measured orders,
            # and what is measured is the broker timestamp, not when this reader gets it.
            fetch_max_wait_ms=500,
            fetch_min_bytes=1024 * 1024,
        )
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> _Changes:
        await self.consumer.start()
        self.task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.consumer.stop()

    async def _read(self) -> None:
        while True:
            got = await self.consumer.getmany(timeout_ms=50)
            for records in got.values():
                for r in records:
                    if r.key is not None:
                        self.seen.setdefault(r.key.decode(), r.timestamp)

    async def wait(self, ids: list[str], timeout: float) -> None:
        """Until every id has a change, or ``timeout`` seconds without a new one."""
        last, count = time.monotonic(), -1
        while not all(i in self.seen for i in ids):
            if len(self.seen) != count:
                last, count = time.monotonic(), len(self.seen)
            if time.monotonic() - last > timeout:
                return
            await asyncio.sleep(0.05)


async def _run(
    bootstrap: str,
    rate: float,
    seconds: float,
    workload: Sequence[tuple[bytes, bytes]] | None,
    cpu_now: Callable[[], dict[str, float]],
) -> dict[str, Any]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        async with _Changes(bootstrap) as changes:
            await _warm_up(producer, changes)
        # The changes are read once the orders are out, not while they go: what is measured
        # is each change's broker timestamp, and a live reader took the bench's CPU and the
        # broker's fetches from the 2 cores being measured.
        orders = await plan(producer, TOPIC, int(rate * seconds), workload)
        before = cpu_now()
        sent, elapsed = await publish_at(producer, TOPIC, orders, rate)
        busy = {k: round((v - before.get(k, 0.0)) / elapsed, 2) for k, v in cpu_now().items()}
    finally:
        await producer.stop()
    async with _Changes(bootstrap) as changes:
        await changes.wait(list(sent), timeout=30)
    summary = _summary(sent, changes.seen, rate) | {
        "records": len(orders),
        "probe_every": PROBE_EVERY if workload is not None else 1,
        "achieved_rate": round(len(orders) / elapsed, 1) if elapsed else 0.0,
    }
    # Every process's share of the 2 cores while orders were published (bench: the producer).
    return summary | {"cpu_cores_busy": busy, "sent": sent, "seen": changes.seen}


async def _warm_up(producer: AIOKafkaProducer, changes: _Changes) -> None:
    """Until the worker has joined the group and its relay has published once."""
    deadline = time.monotonic() + 120
    for n in range(1_000_000):
        customer = f"warm-{n}"
        now = int(time.time() * 1000)
        await producer.send_and_wait(TOPIC, purchase(customer, now), key=customer.encode())
        await changes.wait([customer], timeout=1.0)
        if customer in changes.seen:
            await asyncio.sleep(1.0)
            return
        if time.monotonic() > deadline:
            break
    raise TimeoutError("no segment change within 120 s of warm-up")


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest rank."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, int(q / 100 * len(ordered) + 0.5) - 1))]


def _split(redis_url: str, sent: dict[str, int], seen: dict[str, int]) -> dict[str, Any]:
    """Where the time goes: the worker stamps each customer's scores with the wall time its
    batch started processing (as_of, clock=wall), which splits the latency into
    publish -> batch start (fetch, faust) and batch start -> change publish."""
    ids = [c for c in sent if c in seen]
    states = asyncio.run(_as_of(redis_url, ids))
    fetched, processed = [], []
    for c, started in zip(ids, states, strict=True):
        if started is not None:
            fetched.append(float(started - sent[c]))
            processed.append(float(seen[c] - started))
    return {
        "publish_to_batch_start": stats(sorted(fetched)),
        "batch_start_to_change_publish": stats(sorted(processed)),
    }


async def _as_of(redis_url: str, ids: list[str]) -> list[int | None]:
    client = aioredis.Redis.from_url(redis_url)
    reader = StateReader(client, Keys(PREFIX))
    try:
        out: list[int | None] = []
        for i in range(0, len(ids), 1000):
            states = await reader.customers(ids[i : i + 1000])
            out.extend(None if s is None else s.as_of_ms for s in states)
        return out
    finally:
        await client.aclose()


def stats(values: list[float]) -> dict[str, float]:
    return {f"p{q}_ms": round(_percentile(values, q), 1) for q in (50, 95, 99)} | {
        "max_ms": round(values[-1], 1) if values else 0.0
    }


def _summary(sent: dict[str, int], seen: dict[str, int], rate: float) -> dict[str, Any]:
    """Over the probes (``orders``): their changes' latency."""
    in_order = [float(seen[c] - t) for c, t in sent.items() if c in seen]  # by publish time
    broker = sorted(in_order)
    return {
        "target_rate": round(rate, 1),
        "orders": len(sent),
        "changes_seen": len(broker),
        "missing": len(sent) - len(broker),
        "publish_to_change_publish": stats(broker),
    } | by_fifth(in_order)


def by_fifth(in_order: list[float]) -> dict[str, float]:
    """p50 and p99 of the first and the last fifth of the orders, by publish time: rising
    means the run falls behind, or (see ``broker_alone``) the broker slows as it grows."""
    fifth = max(1, len(in_order) // 5)
    parts = {"first": sorted(in_order[:fifth]), "last": sorted(in_order[-fifth:])}
    return {
        f"p{q}_ms_{name}_fifth": round(_percentile(values, q), 1)
        for q in (50, 99)
        for name, values in parts.items()
    }
