"""``python -m rfm_dev.shopper``: the demo shop on its own, publishing live orders to Kafka.

The compose stack's ``demo`` profile runs this next to the real workers so the dashboards
fill with traffic (its container is the Dockerfile's ``shop`` stage: the worker image plus
this package). Unlike ``rfm-stream demo`` it starts no servers and backfills nothing: it
creates the topics if they are missing, then publishes ``live_orders`` to the orders topic
at a steady rate until SIGTERM or Ctrl-C.

Settings are the worker's (``RFM_KAFKA_BOOTSTRAP``, ``RFM_ORDERS_TOPIC``, ...) plus three of
its own, read from the environment only:

- ``RFM_SHOP_RATE``: orders per second (default 20),
- ``RFM_SHOP_CUSTOMERS``: size of the customer base (default 500),
- ``RFM_SHOP_SEED``: seed of the generator (default: taken from the clock).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping
from itertools import islice

from rfm_dev.shop import live_orders
from state.model import now_ms
from stream.publisher import OutgoingRecord, Publisher
from stream.security import aiokafka_options
from stream.settings import Settings, SettingsError, load_settings
from stream.topics import ensure_topics

log = logging.getLogger("rfm_dev.shopper")

DEFAULT_RATE = 20.0
DEFAULT_CUSTOMERS = 500
TICKS_PER_SECOND = 4  # publish in small batches, a quarter of a second apart


def _env_number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: must be a number > 0") from None
    if not value > 0:
        raise SettingsError(f"{name}={raw!r}: must be a number > 0")
    return value


def _env_seed(env: Mapping[str, str]) -> int:
    raw = env.get("RFM_SHOP_SEED", "").strip()
    if not raw:
        return now_ms() % 1_000_000
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"RFM_SHOP_SEED={raw!r}: must be a whole number") from None


async def run(settings: Settings, rate: float, customers: int, seed: int) -> int:
    """Publish until cancelled or SIGTERM; returns how many orders were published."""
    await ensure_topics(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    orders = live_orders(customers, seed=seed, now_ms=now_ms)
    publisher = Publisher(settings.kafka.bootstrap, **aiokafka_options(settings))
    published = 0
    owed = 0.0  # fractional orders carried to the next tick, so any rate is kept on average
    interval = 1.0 / TICKS_PER_SECOND
    log.info(
        "publishing %.1f orders/s from %d customers to %s at %s",
        rate,
        customers,
        settings.kafka.orders_topic,
        settings.kafka.bootstrap,
    )
    try:
        next_tick = time.monotonic()
        while not stop.is_set():
            owed += rate * interval
            n, owed = int(owed), owed - int(owed)
            if n:
                batch = [
                    OutgoingRecord(settings.kafka.orders_topic, k, v) for k, v in islice(orders, n)
                ]
                await publisher.publish(batch)
                published += n
            next_tick += interval
            with contextlib.suppress(TimeoutError):  # not wait_for: see OutboxRelay.run_forever
                async with asyncio.timeout(max(0.0, next_tick - time.monotonic())):
                    await stop.wait()
    finally:
        await publisher.stop()
        log.info("stopped after publishing %d orders", published)
    return published


def main(env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    try:
        settings = load_settings(env=env)
        rate = _env_number(env, "RFM_SHOP_RATE", DEFAULT_RATE)
        customers = int(_env_number(env, "RFM_SHOP_CUSTOMERS", DEFAULT_CUSTOMERS))
        seed = _env_seed(env)
    except SettingsError as exc:
        print(f"rfm-stream shopper: bad setting: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.operations.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    asyncio.run(run(settings, rate, customers, seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
