"""``rfm-stream demo``: everything on one machine, with live segment changes on screen.

Starts an embedded broker and Redis (unless RFM_KAFKA_BOOTSTRAP / RFM_REDIS_URL are set),
backfills a year of synthetic history, runs one worker as a child process and a synthetic
shop, and prints every segment change as marketing automation would receive it.

Development code (``rfm_dev``): ``rfm-stream demo`` finds it in a clone's editable install;
an installation without it (the production image) exits 2 saying so (stream/cli/main.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer

from rfm_dev.embedded_stack import EmbeddedStack
from rfm_dev.shop import ShopProfile, generate_history, live_orders
from state.hooks import NO_FAULTS, FaultHooks
from state.model import MS_PER_DAY, now_ms
from stream.publisher import OutgoingRecord, Publisher
from stream.security import aiokafka_options
from stream.settings import Settings
from stream.topics import ensure_topics

BACKFILL = ShopProfile(customers=2_000, orders=8_000, start_ms=0, end_ms=0, seed=11)
LIVE_RATE = 25  # orders per second


def run(settings: Settings, args: argparse.Namespace, hooks: FaultHooks = NO_FAULTS) -> int:
    signal.signal(signal.SIGTERM, _raise_interrupt)  # stop cleanly on SIGTERM too
    with _servers(settings) as settings:
        print(f"broker {settings.kafka.bootstrap}, redis {settings.redacted()['RFM_REDIS_URL']}")
        asyncio.run(ensure_topics(settings))
        worker = _start_worker(settings)
        try:
            asyncio.run(_show(settings))
        except KeyboardInterrupt:
            print("\nstopping ...")
        finally:
            _stop_worker(worker)
    return 0


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _servers(settings: Settings) -> Iterator[Settings]:
    if "RFM_KAFKA_BOOTSTRAP" in os.environ and "RFM_REDIS_URL" in os.environ:
        yield settings
        return
    print("starting an embedded broker and Redis ...")
    with EmbeddedStack() as stack:
        yield settings.with_values(
            {
                "RFM_KAFKA_BOOTSTRAP": os.environ.get("RFM_KAFKA_BOOTSTRAP", stack.kafka_bootstrap),
                "RFM_REDIS_URL": os.environ.get("RFM_REDIS_URL", stack.redis_url),
            }
        )


def _start_worker(settings: Settings) -> subprocess.Popen[bytes]:
    log_dir = Path(settings.operations.data_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "demo-worker.log"
    env = {
        **os.environ,
        "RFM_KAFKA_BOOTSTRAP": settings.kafka.bootstrap,
        "RFM_REDIS_URL": settings.redis.url,
        "RFM_RESCORE_INTERVAL": str(min(settings.operations.rescore_interval, 10)),
    }
    print(f"starting a worker (log: {log_path}) ...")
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "stream.cli.main", "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop_worker(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)


async def _show(settings: Settings) -> None:
    publisher = Publisher(settings.kafka.bootstrap, **aiokafka_options(settings))
    try:
        await _backfill(settings, publisher)
        shop = asyncio.create_task(_shop(settings, publisher))
        try:
            await _print_changes(settings)
        finally:
            shop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await shop
    finally:
        await publisher.stop()


async def _backfill(settings: Settings, publisher: Publisher) -> None:
    end = now_ms() - 60_000
    profile = replace(BACKFILL, start_ms=end - 365 * MS_PER_DAY, end_ms=end, seed=end % 1000)
    records = [
        OutgoingRecord(settings.kafka.orders_topic, key, value)
        for key, value in generate_history(profile)
    ]
    print(
        f"publishing a year of history: {len(records)} events from "
        f"{profile.customers} customers ..."
    )
    for i in range(0, len(records), 2000):
        await publisher.publish(records[i : i + 2000])


async def _shop(settings: Settings, publisher: Publisher) -> None:
    orders = live_orders(500, seed=now_ms() % 1000, now_ms=now_ms)
    while True:
        batch = [
            OutgoingRecord(settings.kafka.orders_topic, k, v)
            for k, v in (next(orders) for _ in range(LIVE_RATE))
        ]
        await publisher.publish(batch)
        await asyncio.sleep(1)


async def _print_changes(settings: Settings) -> None:
    consumer = AIOKafkaConsumer(
        settings.kafka.changes_topic,
        bootstrap_servers=settings.kafka.bootstrap,
        group_id=None,
        auto_offset_reset="latest",
    )
    await consumer.start()
    print(f"live segment changes from {settings.kafka.changes_topic} (Ctrl-C stops everything):")
    seen = 0
    started = time.monotonic()
    try:
        async for message in consumer:
            change = orjson.loads(message.value)
            seen += 1
            print(
                f"{change['as_of'][11:19]}  {change['customer_id']:<10} "
                f"{change['previous_segment'] or '-':>14} -> {change['segment'] or '-':<14} "
                f"r{change['r']} f{change['f']} m{change['m']}  "
                f"{change['orders']} orders, {change['spend']} {change['currency']}  "
                f"({change['cause']})"
            )
            if seen % 500 == 0:
                print(f"-- {seen} changes in {time.monotonic() - started:.0f}s")
    finally:
        await consumer.stop()
